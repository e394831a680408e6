"""Peak memory and wall time of ``harness evaluate`` on a 1,000,000-span OTLP export.

The export is generated into a temporary directory with a fixed seed: calls of 50 to 100
livekit-agents spans (job_entrypoint, agent_session, user_turn, agent_turn, llm_node,
tts_node, function_tool) with the lk.* latencies, token counts and transcripts the
evaluators read, a background service's request in the call's trace, and an after-call
workflow in a trace of its own, linked to the call's. A third of the calls carry
``conversation.id`` (harness_instrument); the rest only what livekit-agents writes (the room's
``gen_ai.conversation.id`` and ids on job_entrypoint), so they join by room id, trace
membership and links, and are adopted at the end of the file. About 30 calls overlap in
time, and the file is in the order a collector's file exporter writes it: batches of
finished spans, one line per batch and service.

``harness evaluate`` runs as a subprocess under ``/usr/bin/time -v`` (Debian package
``time``); the benchmark prints its wall time and peak resident set size and fails when the
peak is 1 GB or more. A run that passes ``--kill-mb`` (4096 by default, to spare a shared
machine) is killed and reported as such.

    python benchmarks/evaluate_large_export.py [--spans 1000000] [--root CHECKOUT]

``--root`` evaluates with another checkout's ``harness`` (e.g. ``git worktree add
/tmp/before HEAD`` for the code before a change); ``--skip-report`` leaves out the
command's end-of-run report, to measure the evaluation alone; ``--keep FILE`` writes the
export there and reuses it on the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TIME = "/usr/bin/time"
LIMIT_MB = 1024
T0_NS = 1_760_000_000 * 10**9
CALL_GAP_S = 4.0
"""A new call starts every 4 s; a call lasts about two minutes: some 30 at once."""
BATCH = 512
"""Spans per export batch (the OpenTelemetry batch processor's default)."""

AGENT = {"service.name": "clinic-agent", "service.version": "2.4.0"}
BOOKINGS = {"service.name": "clinic-bookings"}
WORKFLOW = {"service.name": "clinic-workflow"}
SAYS = [
    "I would like to book a cleaning",
    "do you have anything on monday",
    "the eleven o'clock one please",
    "yes a regular cleaning",
    "will I get a confirmation",
    "thanks that's all",
]
REPLIES = [
    "Of course. Which day would suit you?",
    "Monday has openings at 9:30, 11 and 2:15.",
    "Eleven it is. May I have your name?",
    "Perfect. Shall I book Monday at 11 for a cleaning?",
    "Yes, you will get a confirmation message shortly.",
    "You're welcome. Goodbye!",
]


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"stringValue": str(v)}


def _attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in d.items()]


class Call:
    """The spans of one call, as OTLP/JSON span objects with their resource."""

    def __init__(self, n: int, rng: random.Random, start_s: float) -> None:
        self.n = n
        self.rng = rng
        self.spans: list[tuple[int, dict[str, Any], dict[str, Any]]] = []  # (end, resource, span)
        self.stamped = n % 3 == 0
        self.sid = f"RM_{n:08x}"
        self.job = f"AJ_{n:08x}"
        self.trace = f"{n + 1:016x}{rng.getrandbits(64):016x}"
        self.trace_bg = f"{n + 1:016x}{rng.getrandbits(64):016x}"
        self.trace_wf = f"{n + 1:016x}{rng.getrandbits(64):016x}"
        self._next = 0
        self.start_ns = T0_NS + int(start_s * 1e9)

    def span(
        self,
        name: str,
        start: float,
        end: float,
        *,
        parent: dict[str, Any] | None = None,
        trace: str | None = None,
        resource: dict[str, Any] = AGENT,
        scope: str = "livekit-agents",
        key: bool = True,
        links: tuple[dict[str, Any], ...] = (),
        **attrs: Any,
    ) -> dict[str, Any]:
        self._next += 1
        a = {k.replace("__", "."): v for k, v in attrs.items()}
        if self.stamped:
            a["conversation.id"] = f"conv-{self.n:07d}"
        elif key:
            a["gen_ai.conversation.id"] = self.sid
        s: dict[str, Any] = {
            "traceId": trace or (parent["traceId"] if parent else self.trace),
            "spanId": f"{self.n + 1:08x}{self._next:08x}",
            "name": name,
            "kind": 1,
            "startTimeUnixNano": str(self.start_ns + int(start * 1e9)),
            "endTimeUnixNano": str(self.start_ns + int(end * 1e9)),
            "attributes": _attrs(a),
            "status": {},
        }
        if parent is not None:
            s["parentSpanId"] = parent["spanId"]
        if links:
            s["links"] = [{"traceId": x["traceId"], "spanId": x["spanId"]} for x in links]
        self.spans.append((self.start_ns + int(end * 1e9), resource, {"scope": scope, "span": s}))
        return s

    def build(self, target: int) -> None:
        """About ``target`` spans: a greeting and turns of 4 to 5 spans until it is reached."""
        rng = self.rng
        job = self.span(
            "job_entrypoint",
            0.0,
            1.0,  # the end is set when the call is done
            lk__job_id=self.job,
            lk__pii__room_name=f"room-{self.n}",
            lk__room_sid=self.sid,
        )
        session = self.span("agent_session", 0.2, 1.0, parent=job)
        t = 0.6
        k = 0
        while len(self.spans) < target - 5:
            if k:
                speak = rng.uniform(1.2, 3.0)
                self.span(
                    "user_turn",
                    t,
                    t + speak + 0.4,
                    parent=session,
                    lk__pii__user_transcript=SAYS[k % len(SAYS)],
                    lk__end_of_turn_delay=rng.uniform(0.2, 0.6),
                    lk__transcription_delay=rng.uniform(0.1, 0.3),
                    lk__transcript_confidence=rng.uniform(0.8, 0.99),
                )
                t += speak
            e2e = rng.lognormvariate(0.0, 0.35)
            ttft = rng.uniform(0.2, 0.6)
            speech = rng.uniform(1.5, 4.0)
            text = REPLIES[k % len(REPLIES)]
            turn = self.span(
                "agent_turn",
                t + e2e - 0.3,
                t + e2e + speech,
                parent=session,
                key=k % 2 == 0,  # some spans carry no key at all: they join by their trace
                lk__e2e_latency=e2e,
                lk__pii__response__text=text,
                lk__interrupted=rng.random() < 0.05,
            )
            a = t + e2e - 0.3
            self.span(
                "llm_node",
                a,
                a + ttft + 0.3,
                parent=turn,
                key=False,
                lk__response__ttft=ttft,
                gen_ai__usage__input_tokens=rng.randint(300, 900),
                gen_ai__usage__output_tokens=rng.randint(10, 60),
                gen_ai__request__model="gpt-4o-mini",
            )
            self.span(
                "tts_node",
                a + ttft,
                a + ttft + speech,
                parent=turn,
                key=False,
                lk__response__ttfb=rng.uniform(0.08, 0.3),
                lk__pii__input_text=text,
            )
            if k % 4 == 1:
                tool = self.span(
                    "function_tool",
                    a + 0.05,
                    a + 0.25,
                    parent=turn,
                    lk__function_tool__name="check_availability",
                    lk__function_tool__id=f"call_{k}",
                    lk__pii__function_tool__arguments='{"day": "monday"}',
                    lk__pii__function_tool__output='{"ok": true}',
                    lk__function_tool__is_error=rng.random() < 0.01,
                )
                # the background service continues the call's trace: no key of its own
                self.span(
                    "POST /availability",
                    a + 0.08,
                    a + 0.2,
                    parent=tool,
                    resource=BOOKINGS,
                    scope="bookings",
                    key=False,
                    agent__layer="background",
                )
            t = a + speech + rng.uniform(0.5, 1.5)
            k += 1
        end = t + 0.5
        for _, _, item in self.spans[:2]:  # job_entrypoint and agent_session end last
            item["span"]["endTimeUnixNano"] = str(self.start_ns + int(end * 1e9))
        self.spans[0] = (self.start_ns + int(end * 1e9), *self.spans[0][1:])
        self.spans[1] = (self.start_ns + int(end * 1e9), *self.spans[1][1:])
        # an upload in a trace of its own that carries only the job id (learned above)
        self.span(
            "upload_recording",
            end + 0.1,
            end + 0.6,
            trace=self.trace_bg,
            resource=BOOKINGS,
            scope="uploads",
            key=False,
            lk__job_id=self.job,
        )
        # the after-call workflow: a trace of its own, linked to the call's
        root = self.span(
            "after_call",
            end + 1.0,
            end + 2.6,
            trace=self.trace_wf,
            resource=WORKFLOW,
            scope="workflow",
            key=False,
            links=(job,),
            agent__layer="workflow",
        )
        for step, (a, b) in (("summarise", (1.05, 1.9)), ("write_outbox", (1.95, 2.55))):
            self.span(
                step,
                end + a,
                end + b,
                parent=root,
                resource=WORKFLOW,
                scope="workflow",
                key=False,
                agent__layer="workflow",
            )


def _lines(batch: list[tuple[int, dict[str, Any], dict[str, Any]]]) -> Iterator[str]:
    """One ExportTraceServiceRequest line per service, as the file exporter writes them."""
    by_service: dict[str, tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]] = {}
    for _, resource, item in batch:
        entry = by_service.setdefault(resource["service.name"], (resource, {}))
        entry[1].setdefault(item["scope"], []).append(item["span"])
    for resource, scopes in by_service.values():
        doc = {
            "resourceSpans": [
                {
                    "resource": {"attributes": _attrs(resource)},
                    "scopeSpans": [
                        {"scope": {"name": name}, "spans": spans} for name, spans in scopes.items()
                    ],
                }
            ]
        }
        yield json.dumps(doc, separators=(",", ":"))


def generate(path: Path, spans: int, seed: int) -> tuple[int, int]:
    """Write the export; returns (spans, calls). Streams: only the calls in progress are
    held, finished spans leave in end-time order."""
    rng = random.Random(seed)
    pending: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    written = calls = 0
    with path.open("w", encoding="utf-8") as f:

        def flush(until_ns: int | None) -> None:
            nonlocal pending, written
            pending.sort(key=lambda x: x[0])
            cut = (
                len(pending)
                if until_ns is None
                else next((i for i, x in enumerate(pending) if x[0] > until_ns), len(pending))
            )
            ready, pending = pending[:cut], pending[cut:]
            for i in range(0, len(ready), BATCH):
                for line in _lines(ready[i : i + BATCH]):
                    f.write(line + "\n")
            written += len(ready)

        total = 0
        while total < spans:
            call = Call(calls, rng, calls * CALL_GAP_S)
            call.build(min(rng.randint(50, 100), spans - total))
            total += len(call.spans)
            pending.extend(call.spans)
            calls += 1
            if calls % 50 == 0:  # calls start later and later: what ended before is final
                flush(call.start_ns)
        flush(None)
    return written, calls


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


_SKIP_REPORT = (
    "import sys, harness.cli as cli; "
    "cli.report_at_end = lambda *a, **k: 'report: skipped (--skip-report)'; "
    "raise SystemExit(cli.main(sys.argv[1:]))"
)


def evaluate(export: Path, root: Path, kill_mb: float, skip_report: bool) -> dict[str, Any]:
    """``harness evaluate`` under /usr/bin/time -v; kills it past ``kill_mb``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    harness = ["-c", _SKIP_REPORT] if skip_report else ["-m", "harness"]
    cmd = [TIME, "-v", sys.executable, *harness, "evaluate", str(export)]
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killed: list[float] = []

    def watch() -> None:
        while proc.poll() is None:
            for child in _children(proc.pid):
                rss = _rss_mb(child)
                if rss > kill_mb:
                    killed.append(rss)
                    os.kill(child, signal.SIGKILL)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    watcher.join()
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", err)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err)
    status = re.search(r"Exit status: (\d+)", err)
    signalled = re.search(r"Command terminated by signal (\d+)", err)
    seconds = 0.0
    if wall:
        for part in wall.group(1).split(":"):
            seconds = seconds * 60 + float(part)
    return {
        "peak_mb": int(peak.group(1)) / 1024 if peak else float("nan"),
        "wall_s": seconds,
        "exit": int(status.group(1)) if status else None,
        "signal": int(signalled.group(1)) if signalled else None,
        "killed_at_mb": killed[0] if killed else None,
        "first_line": out.splitlines()[0] if out else "",
        "stderr_tail": [ln for ln in err.splitlines() if ln and not ln.startswith("\t")][-3:],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spans", type=int, default=1_000_000, help="spans in the export")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--root", type=Path, default=ROOT, help="the checkout whose harness runs")
    ap.add_argument("--kill-mb", type=float, default=4096, help="kill the run past this RSS")
    ap.add_argument("--keep", type=Path, default=None, help="write the export here and keep it")
    ap.add_argument(
        "--skip-report",
        action="store_true",
        help="measure the evaluation alone: the command's end-of-run HTML report is not written",
    )
    args = ap.parse_args(argv)
    if not Path(TIME).exists():
        print(f"{TIME} is missing: apt-get install -y time", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="harness-large-export-") as tmp:
        export = args.keep or Path(tmp) / "export.jsonl"
        if args.keep is not None and export.exists():
            n_spans, n_calls = args.spans, -1
        else:
            start = time.perf_counter()
            n_spans, n_calls = generate(export, args.spans, args.seed)
            print(
                f"generated {n_spans} spans of {n_calls} calls "
                f"({export.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - start:.1f} s"
            )
        r = evaluate(export, args.root.resolve(), args.kill_mb, args.skip_report)
    what = " (report skipped)" if args.skip_report else ""
    print(f"harness evaluate{what} ({args.root}): {r['first_line'] or '(no output)'}")
    print(f"wall time: {r['wall_s']:.1f} s")
    print(f"peak RSS (Maximum resident set size): {r['peak_mb']:.0f} MB")
    if r["killed_at_mb"] is not None:
        print(f"killed at {r['killed_at_mb']:.0f} MB resident (--kill-mb {args.kill_mb:.0f})")
    elif r["exit"] not in (0, 1):
        print(f"exit status {r['exit']}: " + " | ".join(r["stderr_tail"]))
    ok = r["killed_at_mb"] is None and r["exit"] in (0, 1) and r["peak_mb"] < LIMIT_MB
    print(f"{'OK' if ok else 'FAIL'}: peak RSS {'<' if ok else 'not <'} {LIMIT_MB} MB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
