"""Seconds to import a long incident: a 120-turn, ~10-minute call with its stereo recording.

The call is the loop incident of tests/fixtures/incidents (built by the same code), grown to
120 caller turns. Every turn is a user_turn span with a transcript and word timings; every
tenth turn gives a phone number, so its audio is silenced word by word; the agent asks to
confirm the booking over and over. The recording is 48 kHz stereo (caller left, agent
right) and starts 1.3 s before the job, so the import also aligns it. The timed part is
:func:`harness.incident.import_incident` from the files on disk to the written fixture:
reading, scoring with every evaluator, classifying, redacting, cutting 120 turn WAVs,
estimating conditions and writing. The target is under 5 s.

    python benchmarks/incident_import.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.incident import import_incident  # noqa: E402
from harness.trace.otlp import spans_to_json_lines  # noqa: E402
from tests.fixtures.incidents.build import T0, clinic_loop, stereo_recording  # noqa: E402

TURNS = 120
TARGET_S = 5.0
CONFIRM = "Just to confirm, Tuesday at nine, right?"


def long_dialog(turns: int = TURNS) -> list[tuple[str, str, str | None, float | None]]:
    out: list[tuple[str, str, str | None, float | None]] = []
    for k in range(1, turns + 1):
        if k == 1:
            out.append(("book a cleaning", "Sure. Which day works?", None, None))
        elif k == 2:
            out.append(
                ("next tuesday please", "Tuesday at nine is free.", "check_availability", None)
            )
        elif k % 10 == 0:
            out.append((f"call me on 555 01{k % 100:02d} 4567", CONFIRM, None, None))
        elif k % 17 == 0:
            out.append(("yes i said yes", CONFIRM, None, 1.2))
        else:
            out.append(("yes that's right", CONFIRM, None, None))
    return out


def build(root: Path) -> tuple[Path, Path, float]:
    dialog = long_dialog()
    every_turn = frozenset(range(1, len(dialog) + 1))
    instance, speech = clinic_loop("conv-long", dialog=dialog, word_turns=every_turn)
    trace = root / "trace.jsonl"
    trace.write_text("\n".join(spans_to_json_lines(instance.spans)) + "\n")
    rec = stereo_recording(root / "call.wav", speech, instance, start=T0 - 1.3, noise_dbfs=-60)
    seconds = (
        max(s.end_ns for s in instance.spans) - min(s.start_ns for s in instance.spans)
    ) / 1e9
    return trace, rec, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trace, rec, seconds = build(root)
        size_mb = rec.stat().st_size / 1e6
        print(
            f"call: {TURNS} turns, {seconds / 60:.1f} min, recording {size_mb:.0f} MB "
            f"(48 kHz stereo), trace {trace.stat().st_size / 1e3:.0f} kB"
        )
        times = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            result = import_incident(
                trace,
                recording=rec,
                expected={"tool_called": "request_booking"},
                out_dir=root / f"run{i}" / "scenarios",
                audio_dir=root / f"run{i}" / "audio",
            )
            times.append(time.perf_counter() - t0)
        best, worst = min(times), max(times)
        print(
            f"import: {best:.2f} s best, {worst:.2f} s worst of {args.repeat} "
            f"({len(result.audio_paths)} turn WAVs, {result.severity} {result.failing_layer}, "
            f"redacted {dict(result.redactions)})"
        )
        ok = worst < TARGET_S
        print(f"target: under {TARGET_S:.0f} s: {'met' if ok else 'MISSED'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
