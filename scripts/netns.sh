#!/usr/bin/env bash
# Runs a command inside a private network namespace whose only addresses are loopback ones,
# so test traffic (WebRTC media included) cannot reach any other host, by construction:
#   scripts/netns.sh run CMD ARGS...
#   scripts/netns.sh delete
#
# The namespace has `lo` (127.0.0.1, ::1) and one veth interface holding 127.0.1.1/32 with
# IPv6 off. The veth is there for libwebrtc, which gathers ICE host candidates only on
# interfaces that are not flagged as loopback: with `lo` alone, the caller and the agent
# have no candidate and no call connects. There is no route to anything else.
# Needs root (ip netns). Without root the command runs as it is, with a notice.
#
# HARNESS_NETNS_EXTRA_ADDR=192.0.2.1/32 also gives the veth that address (a documentation
# address: no route leads anywhere from it). pion, under LiveKit's Go SDK, gathers no ICE
# candidate on any 127/8 address, so benchmarks/caller_cost.py runs its Go participants in
# a namespace of its own with one (HARNESS_NETNS=harness-bench).
set -euo pipefail

NS=${HARNESS_NETNS:-harness-loopback}
say() { printf '[netns] %s\n' "$*" >&2; }

ensure() {
  if ip netns list 2>/dev/null | grep -qw "$NS"; then return; fi
  ip netns add "$NS"
  ip netns exec "$NS" ip link set lo up
  ip netns exec "$NS" ip link add hl0 type veth peer name hl1
  ip netns exec "$NS" sysctl -q -w net.ipv6.conf.hl0.disable_ipv6=1 net.ipv6.conf.hl1.disable_ipv6=1
  ip netns exec "$NS" ip addr add 127.0.1.1/32 dev hl0
  ip netns exec "$NS" ip link set hl0 up
  ip netns exec "$NS" ip link set hl1 up
  say "created network namespace $NS (lo and 127.0.1.1 only)"
}

case "${1:-}" in
  run)
    shift
    [ $# -gt 0 ] || { say "usage: $0 run CMD ARGS..."; exit 2; }
    if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1; then
      say "not root (or no iproute2): running in the host's network namespace; WebRTC clients"
      say "will bind the host's interface addresses (their packets still go to 127.0.0.1 only)"
      exec "$@"
    fi
    ensure
    if [ -n "${HARNESS_NETNS_EXTRA_ADDR:-}" ] && \
        ! ip netns exec "$NS" ip -o addr show dev hl0 | grep -qw "${HARNESS_NETNS_EXTRA_ADDR%/*}"; then
      ip netns exec "$NS" ip addr add "$HARNESS_NETNS_EXTRA_ADDR" dev hl0
      say "added $HARNESS_NETNS_EXTRA_ADDR to $NS"
    fi
    exec ip netns exec "$NS" "$@"
    ;;
  delete)
    ip netns del "$NS" 2>/dev/null || true
    ;;
  *)
    say "usage: $0 run CMD ARGS... | delete"; exit 2 ;;
esac
