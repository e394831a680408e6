#!/usr/bin/env bash
# Installs everything the harness, its tests and `make demo` need, idempotently:
#   1. Debian packages (offline TTS engines, ffmpeg, sox, promtool, tcpdump, iproute2)
#   2. a venv in .venv with the project and instrument/ (its own distribution) in editable
#      mode, plus dev extras
#   3. the real LiveKit server, built with `go install`, in .tools/bin (git-ignored)
#   4. a small OpenTelemetry Collector, built with the collector's builder, in .tools/bin
#   5. the Go SDK participant of benchmarks/caller_cost.py (benchmarks/go-participant), in
#      .tools/bin/lkparticipant
# Each step is skipped when already done, so a second run takes about a second.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

LIVEKIT_VERSION=${LIVEKIT_VERSION:-v1.13.5}
OTELCOL_BUILDER_VERSION=${OTELCOL_BUILDER_VERSION:-v0.165.0}
TOOLS=${HARNESS_TOOLS_DIR:-$ROOT/.tools}
VENV=${HARNESS_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
APT_PACKAGES=(espeak-ng flite festival festvox-kallpc16k ffmpeg sox libopus0 tcpdump iproute2 prometheus prometheus-alertmanager chromium chromium-driver time)

say() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

step_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then say "apt packages: present"; return; fi
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]}. Run as root, or: sudo apt-get install -y ${missing[*]}"
  say "apt packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "command failed: apt-get update"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "command failed: apt-get install -y ${missing[*]}"
}

step_venv() {
  local stamp="$VENV/.harness-installed"
  local want
  want=$(cat pyproject.toml instrument/pyproject.toml | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    say "venv: up to date ($VENV)"; return
  fi
  say "venv: installing the project and instrument/ with dev extras into $VENV"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" || die "command failed: $PYTHON -m venv $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null || die "command failed: pip install --upgrade pip"
  # one command, so the root's pin on livekit-call-harness-instrument resolves to ./instrument
  "$VENV/bin/python" -m pip install -q -e ./instrument -e ".[dev]" \
    || die "command failed: $VENV/bin/pip install -e ./instrument -e '.[dev]'"
  echo "$want" > "$stamp"
}

server_hint() {
  cat >&2 <<TXT
[tools] To use another LiveKit server instead of building one, either
[tools]   - point LIVEKIT_SERVER_BIN at a livekit-server $LIVEKIT_VERSION binary, or
[tools]   - set LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET to a running server
[tools] and run the command again.
TXT
}

step_server() {
  if [ -n "${LIVEKIT_SERVER_BIN:-}" ]; then
    [ -x "$LIVEKIT_SERVER_BIN" ] || die "LIVEKIT_SERVER_BIN=$LIVEKIT_SERVER_BIN is not an executable file"
    say "livekit-server: using LIVEKIT_SERVER_BIN=$LIVEKIT_SERVER_BIN"; return
  fi
  local bin="$TOOLS/bin/livekit-server" stamp="$TOOLS/livekit-server.version"
  if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$LIVEKIT_VERSION" ]; then
    say "livekit-server: $LIVEKIT_VERSION present ($bin)"; return
  fi
  if ! command -v go >/dev/null 2>&1; then
    if [ -n "${LIVEKIT_URL:-}" ]; then say "livekit-server: no Go, but LIVEKIT_URL is set; tests will use $LIVEKIT_URL"; return; fi
    say "command failed: go (Go is not installed; it is needed to build livekit-server)"
    server_hint; exit 1
  fi
  mkdir -p "$TOOLS/bin"
  local cmd="go install github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
  say "livekit-server: building with '$cmd' (a few minutes the first time; the Go build cache makes later builds fast)"
  if ! GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod $cmd >"$TOOLS/go-install.log" 2>&1; then
    tail -n 20 "$TOOLS/go-install.log" >&2
    say "command failed: GOBIN=$TOOLS/bin $cmd (full log: $TOOLS/go-install.log)"
    server_hint; exit 1
  fi
  mv -f "$TOOLS/bin/server" "$bin"
  "$bin" --version >/dev/null 2>&1 || { say "command failed: $bin --version"; server_hint; exit 1; }
  echo "$LIVEKIT_VERSION" > "$stamp"
  say "livekit-server: $("$bin" --version) installed at $bin"
}

# The OpenTelemetry Collector a deployment puts between its agents and the harness (the e2e
# test that starts server, collector and agent apart from the harness). Built with the
# collector's own builder from scripts/otelcol-builder.yaml; rebuilt when that file changes.
step_otelcol() {
  local bin="$TOOLS/bin/otelcol-harness" stamp="$TOOLS/otelcol-harness.version"
  local want
  want="$OTELCOL_BUILDER_VERSION $(sha256sum scripts/otelcol-builder.yaml | cut -c1-16)"
  if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "otelcol: present ($bin)"; return
  fi
  command -v go >/dev/null 2>&1 || die "command failed: go (Go is needed to build the OpenTelemetry Collector)"
  mkdir -p "$TOOLS/bin" "$TOOLS/otelcol-build"
  local builder="go.opentelemetry.io/collector/cmd/builder@$OTELCOL_BUILDER_VERSION"
  say "otelcol: building with the collector builder ($builder; about 3 minutes the first time)"
  if ! GOBIN="$TOOLS/bin" go install "$builder" >"$TOOLS/otelcol-build.log" 2>&1; then
    tail -n 20 "$TOOLS/otelcol-build.log" >&2
    die "command failed: GOBIN=$TOOLS/bin go install $builder (log: $TOOLS/otelcol-build.log)"
  fi
  sed "s|\${OTELCOL_BUILD_DIR}|$TOOLS/otelcol-build|" scripts/otelcol-builder.yaml >"$TOOLS/otelcol-builder.yaml"
  if ! "$TOOLS/bin/builder" --config "$TOOLS/otelcol-builder.yaml" >>"$TOOLS/otelcol-build.log" 2>&1; then
    tail -n 20 "$TOOLS/otelcol-build.log" >&2
    die "command failed: $TOOLS/bin/builder --config $TOOLS/otelcol-builder.yaml (log: $TOOLS/otelcol-build.log)"
  fi
  mv -f "$TOOLS/otelcol-build/otelcol-harness" "$bin"
  "$bin" components >/dev/null 2>&1 || die "command failed: $bin components"
  echo "$want" > "$stamp"
  say "otelcol: $OTELCOL_BUILDER_VERSION (otlp receiver, batch, otlphttp exporter) installed at $bin"
}

# The cheapest LiveKit participant the Go SDK makes (publishes pre-encoded Opus from a file,
# reads the agent's packets; and a stand-in echo agent): what benchmarks/caller_cost.py
# measures the harness's own caller against. Rebuilt when its sources change.
step_goparticipant() {
  local src="$ROOT/benchmarks/go-participant" bin="$TOOLS/bin/lkparticipant"
  local stamp="$TOOLS/lkparticipant.version" want
  want=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)
  if [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "lkparticipant: present ($bin)"; return
  fi
  command -v go >/dev/null 2>&1 || die "command failed: go (Go is needed to build benchmarks/go-participant)"
  mkdir -p "$TOOLS/bin"
  say "lkparticipant: building benchmarks/go-participant (LiveKit's Go SDK; a minute or two the first time)"
  if ! (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$bin" .) >"$TOOLS/lkparticipant-build.log" 2>&1; then
    tail -n 20 "$TOOLS/lkparticipant-build.log" >&2
    die "command failed: cd benchmarks/go-participant && go build -o $bin . (log: $TOOLS/lkparticipant-build.log)"
  fi
  echo "$want" > "$stamp"
  say "lkparticipant: installed at $bin"
}

case "${1:-all}" in
  apt) step_apt ;;
  venv) step_venv ;;
  server) step_server ;;
  otelcol) step_otelcol ;;
  goparticipant) step_goparticipant ;;
  all) step_apt; step_venv; step_server; step_otelcol; step_goparticipant ;;
  *) die "usage: $0 [all|apt|venv|server|otelcol|goparticipant]" ;;
esac
