"""CPU per participant: the harness's synthetic caller against LiveKit's Go SDK participant,
in one run against one local livekit-server, and how many real-time calls one core carries
on the caller side without underruns.

Every room holds a stand-in agent (``lkparticipant -mode echo``, Go: it sends each caller's
own packets back, decoding nothing), so both kinds of participant do the same work on the
wire: publish a real-time Opus track and receive the agent's.

- **harness**: N :class:`harness.call.caller.SyntheticCaller`\\ s in one Python process of
  their own (nothing else in it: no trace receiver, no scoring), each speaking
  ``benchmarks/caller_cost.yaml`` (8 turns, call after call): it pushes PCM, which LiveKit's
  client library encodes to Opus; decodes the agent's audio, finds its speech, records both
  sides and reads the transcription streams.
- **Go**: one ``lkparticipant -mode publish`` process with N participants, each playing the
  same turns from a pre-encoded Ogg Opus file (no encoder) and reading the agent's packets
  (no decoder): what ``lk load-test``'s audio publisher does, plus the subscription.

Each process's CPU (every thread: user + system) is read from ``/proc`` over the same
steady window once all its participants are connected. The harness side also reports its
frame underruns (gaps in the caller's speech because it fell behind) and its event loop's
lag.

    HARNESS_NETNS=harness-bench HARNESS_NETNS_EXTRA_ADDR=192.0.2.1/32 scripts/netns.sh run \
        .venv/bin/python benchmarks/caller_cost.py [--participants 20] [--levels 10,20,40]
        [--warmup 10] [--seconds 30] [--profile caller.stacks] [--harness-only] [--json F]

(pion, under the Go SDK, gathers no ICE candidate on a 127/8 address: inside a loopback
namespace the Go participants need the extra documentation address; in the host's
namespace they use its interfaces' addresses, and every packet still goes to 127.0.0.1.)

``--levels``: harness callers only, at each level, for calls per core without underruns.
``--profile FILE``: one more run of the harness callers, sampled by py-spy (every thread,
Python and native frames; raw stacks to FILE), its hottest frames printed. ``--caller-file``
measures another version of the caller module (to compare before and after a change).
Needs ``make tools`` (livekit-server and .tools/bin/lkparticipant) and ffmpeg with libopus.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "benchmarks" / "caller_cost.yaml"
GO_BIN = ROOT / ".tools" / "bin" / "lkparticipant"
TICKS = os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(f"[caller_cost] {msg}", file=sys.stderr, flush=True)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a whole process (every thread)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# --- the harness callers' process ---------------------------------------------------------


async def callers_main(args: argparse.Namespace) -> dict:
    """Runs in the child process: N callers, call after call, until the window has passed."""
    from harness.call.selfload import SelfMeter, percentile, read_thread_cpu_s
    from harness.livekit.rooms import RoomService
    from harness.livekit.server import ServerInfo
    from harness.plan.callplan import render_plan
    from harness.scenario.model import load_scenario

    SyntheticCaller = caller_class(args.caller_file)
    info = ServerInfo(args.url, os.environ["LIVEKIT_API_KEY"], os.environ["LIVEKIT_API_SECRET"])
    plan = render_plan(load_scenario(SCENARIO))
    rooms = args.rooms.split(",")
    meter = SelfMeter()
    probe = asyncio.create_task(meter.run())
    tokens = RoomService(info)
    out_dir = Path(tempfile.mkdtemp(prefix="caller-cost-"))
    results = []
    calls = 0
    start = time.monotonic()
    stop_at = start + args.warmup + args.seconds

    async def line(room: str) -> None:
        nonlocal calls
        n = 0
        while time.monotonic() < stop_at:
            n += 1
            calls += 1
            identity = f"caller-{room}-{n}"
            token = tokens.caller_token(room, identity, {"lk.simulator": "true"})
            caller = SyntheticCaller(
                info.url,
                token,
                plan,
                conversation_id=identity,
                room_name=room,
                recording_path=out_dir / f"{identity}.wav",
                identity=identity,
            )
            results.append(await caller.run())

    import gc

    gc_s = [0.0, 0.0, 0.0]
    gc_t0 = [0.0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            gc_t0[0] = time.perf_counter()
        else:
            gc_s[info["generation"]] += time.perf_counter() - gc_t0[0]

    loop_tid = threading.get_native_id()
    lines = [asyncio.create_task(line(r)) for r in rooms]
    await asyncio.sleep(args.warmup)
    t0, loop0, lag0 = os.times(), read_thread_cpu_s(loop_tid), len(meter.lags)
    threads0 = threads_by_name()
    gc.callbacks.append(on_gc)
    w0 = time.monotonic()
    await asyncio.sleep(args.seconds)
    t1, loop1, lag1 = os.times(), read_thread_cpu_s(loop_tid), len(meter.lags)
    gc.callbacks.remove(on_gc)
    threads1 = threads_by_name()
    wall = time.monotonic() - w0
    await asyncio.gather(*lines, return_exceptions=True)
    probe.cancel()
    lags = meter.lags[lag0:lag1]
    errors = [str(r.error) for r in results if r.error is not None]
    underrun = sum(t.caller_underrun_ms for r in results for t in r.turns)
    return {
        "participants": len(rooms),
        "wall_s": wall,
        "cpu_s": (t1.user + t1.system) - (t0.user + t0.system),
        "loop_thread_cpu_s": (loop1 - loop0) if loop0 is not None and loop1 is not None else None,
        "calls": calls,
        "errors": errors[:3],
        "error_count": len(errors),
        "underrun_ms": underrun,
        "underrun_calls": sum(1 for r in results if any(t.caller_underrun_ms for t in r.turns)),
        "lag_p99_ms": percentile(lags, 99),
        "lag_max_ms": max(lags) if lags else None,
        "latencies_ms": [x for r in results for x in r.response_latencies_ms][:2000],
        "gc_s": gc_s,
        "threads_cpu_s": {
            k: round(v - threads0.get(k, 0.0), 3)
            for k, v in sorted(threads1.items(), key=lambda kv: -(kv[1] - threads0.get(kv[0], 0)))
            if v - threads0.get(k, 0.0) > 0.05
        },
    }


def threads_by_name() -> dict[str, float]:
    """CPU seconds so far of this process's threads, added up by thread name (the main
    thread, which runs the callers' event loop here, is "python")."""
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rfind(")")]
        fields = text[text.rfind(")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return out


def caller_class(path: str | None):
    """The harness's SyntheticCaller, or the one of another caller module (``--caller-file``:
    to compare two versions of the caller in the same run)."""
    if not path:
        from harness.call.caller import SyntheticCaller

        return SyntheticCaller
    import importlib.util

    spec = importlib.util.spec_from_file_location("caller_under_test", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--caller-file {path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module.SyntheticCaller


def child(args: argparse.Namespace) -> None:
    out = asyncio.run(callers_main(args))
    print("RESULT " + json.dumps(out), flush=True)


def profile_summary(raw: Path, top: int = 22) -> list[str]:
    """py-spy's raw (collapsed) stacks: the leaf frames that took the most samples, and the
    share of samples in each of the caller's own functions (with what they call)."""
    leaves: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
        for f in set(frames):
            if "caller.py" in f or "ffi_client" in f or "audio_source" in f or "audio_stream" in f:
                inclusive[f] = inclusive.get(f, 0) + n
    if not total:
        return ["(no samples)"]
    out = [f"{total} samples; leaf frames by own samples:"]
    for name, n in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {n / total * 100:5.1f} %  {name[:150]}")
    out.append("caller and client-library frames, with what they call:")
    for name, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        out.append(f"  {n / total * 100:5.1f} %  {name[:150]}")
    return out


# --- processes ------------------------------------------------------------------------------


@dataclass
class Go:
    """A running lkparticipant process."""

    proc: subprocess.Popen

    @classmethod
    def start(cls, mode: str, url: str, env: dict, rooms: list[str], *extra: str) -> Go:
        proc = subprocess.Popen(
            [str(GO_BIN), "-mode", mode, "-url", url, "-rooms", ",".join(rooms), *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return cls(proc)

    def wait_ready(self, want: int, timeout: float = 60.0) -> int:
        """Until it prints ``ready N``; returns N (the participants connected), which must
        be ``want``."""
        result: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("ready"):
                    result.append(line)
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not result:
            self.stop()
            raise SystemExit(f"lkparticipant did not get ready within {timeout:.0f}s")
        n = int(result[0].split()[1])
        if n < want:
            counts = self.stop()
            raise SystemExit(
                f"lkparticipant connected {n} of {want} ({counts.get('first_error')}): "
                "pion gathers no ICE candidate on a 127/8 address; inside the loopback namespace "
                "run: HARNESS_NETNS=harness-bench HARNESS_NETNS_EXTRA_ADDR=192.0.2.1/32 "
                "scripts/netns.sh run .venv/bin/python benchmarks/caller_cost.py"
            )
        return n

    def stop(self) -> dict:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        for line in reversed((out or "").splitlines()):
            with contextlib.suppress(ValueError):
                return json.loads(line)
        return {}


def ogg_of_turns(dest: Path) -> Path:
    """The scenario's turns as the harness caller says them, 1.5 s apart, as Ogg Opus."""
    import numpy as np

    from harness.plan.callplan import CALL_RATE, render_plan
    from harness.scenario.model import load_scenario

    plan = render_plan(load_scenario(SCENARIO))
    gap = np.zeros(int(1.5 * CALL_RATE), dtype=np.int16)
    pcm = np.concatenate(
        [x for t in plan.turns if t.audio is not None for x in (t.audio.to_int16(), gap)]
    )
    wav = dest / "turns.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(CALL_RATE)
        w.writeframes(pcm.tobytes())
    ogg = dest / "turns.ogg"
    subprocess.run(
        [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(wav),
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
            "-application",
            "voip",
            str(ogg),
        ],
        check=True,
        timeout=120,
    )
    return ogg


def run_harness(args, url: str, env: dict, n: int, tag: str, profile: str | None = None) -> dict:
    rooms = [f"{tag}-{i}" for i in range(n)]
    echo = Go.start("echo", url, env, rooms)
    echo.wait_ready(len(rooms))
    e0 = proc_cpu_s(echo.proc.pid)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--url",
        url,
        "--rooms",
        ",".join(rooms),
        "--warmup",
        str(args.warmup),
        "--seconds",
        str(args.seconds),
    ]
    if args.caller_file:
        cmd += ["--caller-file", args.caller_file]
    say(
        f"{n} harness callers ({'profiled' if profile else 'measured'}) for "
        f"{args.warmup + args.seconds:.0f}s..."
    )
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    spy = None
    if profile:  # py-spy samples every thread, Python and native frames, over the window
        time.sleep(args.warmup)
        spy = subprocess.run(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(proc.pid),
                "--native",
                "--threads",
                "--rate",
                "100",
                "--duration",
                str(int(args.seconds)),
                "--format",
                "raw",
                "--output",
                profile,
            ],
            capture_output=True,
            text=True,
            timeout=args.seconds + 120,
        )
    stdout, stderr = proc.communicate(timeout=args.seconds * 4 + 600)
    out = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    echo_cpu = proc_cpu_s(echo.proc.pid) - e0
    echo.stop()
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if not lines:
        sys.stderr.write(out.stderr[-3000:])
        raise SystemExit(f"the callers' process failed (exit {out.returncode})")
    res = json.loads(lines[-1][7:])
    res["echo_cpu_s"] = echo_cpu
    if profile:
        ok = spy is not None and spy.returncode == 0 and Path(profile).is_file()
        why = spy.stderr[-500:] if spy is not None else ""
        res["profile_top"] = profile_summary(Path(profile)) if ok else [f"py-spy failed: {why}"]
    return res


def run_go(args, url: str, env: dict, n: int, ogg: Path) -> dict:
    rooms = [f"go{n}-{i}" for i in range(n)]
    echo = Go.start("echo", url, env, rooms)
    echo.wait_ready(len(rooms))
    say(f"{n} Go SDK participants for {args.warmup + args.seconds:.0f}s...")
    pub = Go.start("publish", url, env, rooms, "-ogg", str(ogg))
    connected = pub.wait_ready(n)
    time.sleep(args.warmup)
    c0, w0 = proc_cpu_s(pub.proc.pid), time.monotonic()
    time.sleep(args.seconds)
    c1, wall = proc_cpu_s(pub.proc.pid), time.monotonic() - w0
    counts = pub.stop()
    echo.stop()
    return {"participants": n, "connected": connected, "cpu_s": c1 - c0, "wall_s": wall, **counts}


def per_participant(r: dict) -> float:
    """Cores per participant: CPU seconds per second of wall time, per participant."""
    return r["cpu_s"] / r["wall_s"] / r["participants"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--participants", type=int, default=20, help="each kind (default 20)")
    p.add_argument(
        "--levels", default="", help="harness-only levels for calls per core, e.g. 10,20,40"
    )
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    p.add_argument("--seconds", type=float, default=30.0, help="the measured window")
    p.add_argument(
        "--profile",
        default=None,
        help="also profile the harness callers with py-spy (raw stacks to this file)",
    )
    p.add_argument(
        "--caller-file",
        default=None,
        help="measure the SyntheticCaller of this module instead (e.g. an earlier version)",
    )
    p.add_argument("--harness-only", action="store_true", help="skip the Go participants")
    p.add_argument("--json", default=None, help="also write the raw figures here")
    p.add_argument("--profile-only", action="store_true", help="only the profiled run")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--rooms", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if not GO_BIN.exists():
        raise SystemExit(
            f"{GO_BIN} is missing: run `make tools` (bash scripts/bootstrap.sh goparticipant)"
        )
    from harness.livekit.server import LocalServer

    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    work = Path(tempfile.mkdtemp(prefix="caller-cost-"))
    ogg = ogg_of_turns(work)
    with LocalServer(log_path=work / "livekit-server.log") as info:
        env = {**os.environ, **info.env()}
        n = args.participants
        if args.profile_only:
            prof = run_harness(args, info.url, env, n, "prof", args.profile or "caller.stacks")
            print("\n".join(prof.get("profile_top", [])))
            return
        harness = run_harness(args, info.url, env, n, f"py{n}")
        go = None if args.harness_only else run_go(args, info.url, env, n, ogg)
        more = [run_harness(args, info.url, env, k, f"lv{k}") for k in levels if k != n]
        profiled = (
            run_harness(args, info.url, env, n, "prof", args.profile) if args.profile else None
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"harness": harness, "go": go, "levels": more, "profiled": profiled})
        )
    report(args, n, harness, go, more, profiled)


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(
    args, n: int, harness: dict, go: dict | None, more: list[dict], profiled: dict | None
) -> None:
    h = per_participant(harness)
    print(
        f"caller cost: {n} participants of each kind, one local livekit-server, a Go echo agent "
        f"in every room; CPU over {args.seconds:.0f} s after a {args.warmup:.0f} s warm-up"
    )
    print()
    print(
        table(
            ["participant", "CPU per participant", "per core", "underruns", "loop lag p99"],
            [
                [
                    "harness SyntheticCaller (Python)",
                    f"{h * 1000:.1f} ms/s",
                    f"{1 / h:.1f}",
                    f"{harness['underrun_ms']:.0f} ms",
                    _ms(harness["lag_p99_ms"]),
                ],
                *(
                    [
                        [
                            "Go SDK participant (lkparticipant)",
                            f"{per_participant(go) * 1000:.1f} ms/s",
                            f"{1 / per_participant(go):.1f}",
                            "-",
                            "-",
                        ]
                    ]
                    if go is not None
                    else []
                ),
            ],
        )
    )
    if go is not None:
        print(f"ratio harness / Go: {h / per_participant(go):.1f}x")
    loop = harness.get("loop_thread_cpu_s")
    if loop is not None and harness["cpu_s"]:
        print(
            f"harness split: the callers' event loop thread {loop / harness['cpu_s'] * 100:.0f} % "
            "of its CPU, LiveKit's native threads (WebRTC, Opus) the rest"
        )
    first = f" ({harness['errors'][0]})" if harness["errors"] else ""
    go_text = (
        f"; Go: {go.get('connected')} connected, {go.get('rx_packets', 0)} packets received, "
        f"{go.get('errors', 0)} errors"
        if go is not None
        else ""
    )
    print(f"harness: {harness['calls']} calls, {harness['error_count']} failed{first}{go_text}")
    echo = harness["echo_cpu_s"] / harness["wall_s"] / n * 1000
    print(f"echo agent (not counted): {echo:.1f} ms/s per room")
    per = harness["wall_s"] * n / 1000
    threads = ", ".join(f"{k} {v / per:.1f}" for k, v in harness.get("threads_cpu_s", {}).items())
    print(f"harness CPU by thread, ms/s per caller: {threads}")
    gc_s = harness.get("gc_s") or [0, 0, 0]
    print(
        "harness garbage collection, ms/s per caller by generation: "
        + ", ".join(f"gen{i} {v / per:.1f}" for i, v in enumerate(gc_s))
    )
    print()
    print("harness callers per core, by how many run at once in one process:")
    rows, best = [], None
    for r in sorted([harness, *more], key=lambda r: r["participants"]):
        c = per_participant(r)
        rows.append(
            [
                str(r["participants"]),
                f"{c * 1000:.1f} ms/s",
                f"{1 / c:.1f}",
                f"{r['underrun_ms']:.0f} ms",
                str(r["underrun_calls"]),
                _ms(r["lag_p99_ms"]),
            ]
        )
        if r["underrun_ms"] == 0 and (best is None or r["participants"] > best["participants"]):
            best = r
    header = ["callers", "CPU per caller", "callers per core", "underruns", "calls hit", "lag p99"]
    print(table(header, rows))
    if best is not None:
        print(
            f"calls per core without underruns: {1 / per_participant(best):.0f} "
            f"(measured with {best['participants']} callers at once, no underrun)"
        )
    else:
        print("calls per core without underruns: none of the levels ran without underruns")
    if profiled is not None:
        print()
        print(
            f"profile of {profiled['participants']} callers (py-spy, every thread, Python and "
            f"native frames; raw stacks in {args.profile}):"
        )
        for line in profiled.get("profile_top", []):
            print("  " + line)


def _ms(v) -> str:
    return "-" if v is None else f"{v:.0f} ms"


if __name__ == "__main__":
    main()
