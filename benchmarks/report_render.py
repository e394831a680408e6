"""Seconds to write the HTML report of a 30-call run.

The run is built from saved artifacts: 30 copies of one call's directory (``trace.jsonl``,
``caller.json``, ``timings.json``, ``recording.wav``) with the run's ``scores.jsonl``
lines repeated for each copy under a fresh conversation id. By default the call is the
committed 10-turn booking call (tests/fixtures/instances/clinic_10_turns, 52 spans over
three services, scored here once); ``--from CALL_DIR`` copies a real call instead (e.g.
``.harness/runs/<run-id>/booking``). The recording is linked, not embedded, so its size
does not matter; a one-second stand-in is written when the call has none. Writing includes
reading every call back, the gates over all scores and the page itself.

    python benchmarks/report_render.py [--calls 30] [--repeat 3] [--from CALL_DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.call.rundir import CallDir, RunDir  # noqa: E402
from harness.gates.scoring import score_instance, score_record  # noqa: E402
from harness.report import write_report  # noqa: E402
from harness.trace.otlp import load_instance  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "instances" / "clinic_10_turns"


def _scores(call: Path) -> list[dict]:
    """The call's lines of its run's scores.jsonl, else its scores computed now."""
    inst = load_instance(call)
    records, _ = RunDir(call.parent).read_scores()
    mine = [r for r in records if r.get("conversation_id") == inst.conversation_id]
    if mine:
        return mine
    return [score_record(s, conversation_id=inst.conversation_id) for s in score_instance(inst)]


def build_run(source: Path, calls: int, run: Path) -> Path:
    records = _scores(source)
    cid = load_instance(source).conversation_id
    lines = []
    for k in range(1, calls + 1):
        d = CallDir(run / f"{source.name}.{k}")
        shutil.copytree(source, d.path)
        new = f"{cid}-{k}"
        for p in (d.trace, d.caller, d.timings, d.transcript):
            if p.is_file():
                p.write_text(p.read_text().replace(cid, new))
        side = json.loads(d.caller.read_text())
        if not d.recording.is_file():
            with wave.open(str(d.recording), "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(8000)
                w.writeframes(b"\0" * 32000)
            side["recording"] = d.recording_name
            d.caller.write_text(json.dumps(side))
        lines += [{**r, "conversation_id": new} for r in records]
    RunDir(run).append_scores(lines)
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3, help="best of N writes")
    parser.add_argument("--from", dest="source", default=str(FIXTURE), help="a call directory")
    args = parser.parse_args()
    source = Path(args.source)
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        run = build_run(source, args.calls, Path(tmp) / "run")
        spans = len(load_instance(run / f"{source.name}.1").spans)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = write_report(run)
            times.append(time.perf_counter() - t0)
        size = out.stat().st_size
    best = min(times)
    print(
        f"report of a {args.calls}-call run ({spans} spans per call, from {source.name}): "
        f"{best:.2f} s to write (best of {args.repeat}; all: "
        f"{', '.join(f'{t:.2f}' for t in times)} s), {size / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
