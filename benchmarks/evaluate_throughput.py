"""Instances per second through every built-in evaluator.

The instance is the committed 10-turn booking call (tests/fixtures/instances/clinic_10_turns:
52 spans over three services, two tool calls, a background write and an after-call
workflow) with a 48 kHz stereo recording synthesised to match its timeline. Each timed
evaluation gets a fresh Instance, so no view is cached from the previous run.

    python benchmarks/evaluate_throughput.py [--seconds 3] [--no-audio]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.evaluators import default_evaluators, evaluate  # noqa: E402
from harness.trace.instance import Instance  # noqa: E402
from harness.trace.otlp import load_instance  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "instances" / "clinic_10_turns"
RATE = 48_000
PARAMS = {
    "task_completion": {
        "expected": {"tool_called": {"name": "request_booking"}, "action_done": "write_booking"}
    },
    "cost": {
        "prices": {
            "llm": {"*": {"input_per_million": 0.15, "output_per_million": 0.6}},
            "tts_per_million_chars": 15.0,
        }
    },
    "workflow": {"required": True},
}


def synthesise_recording(instance: Instance, path: Path) -> Path:
    """Caller speech (left) and agent speech (right) as tones at the side-file's times."""
    caller = instance.caller or {}
    t0 = float(caller["started_at"])
    length = int((float(caller["ended_at"]) - t0 + 1.0) * RATE)
    stereo = np.zeros((length, 2), dtype=np.int16)
    rng = np.random.default_rng(1)

    def place(channel: int, start: float | None, end: float | None, freq: float) -> None:
        if start is None or end is None or end <= start:
            return
        i, j = int((start - t0) * RATE), min(length, int((end - t0) * RATE))
        t = np.arange(j - i) / RATE
        sig = 0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
        sig += 0.01 * rng.standard_normal(j - i)
        stereo[i:j, channel] = np.round(sig * 32767).astype(np.int16)

    for turn in caller["turns"]:
        place(0, turn.get("caller_start"), turn.get("caller_end"), 180.0)
        place(1, turn.get("agent_onset"), turn.get("agent_offset"), 240.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(stereo.tobytes())
    return path


def run(seconds: float, audio: bool) -> tuple[float, int, int]:
    base = load_instance(FIXTURE)
    evaluators = default_evaluators(PARAMS)
    if not audio:
        evaluators = [e for e in evaluators if getattr(e, "name", "") != "audio"]
    with tempfile.TemporaryDirectory() as tmp:
        recording = str(synthesise_recording(base, Path(tmp) / "call.wav")) if audio else None

        def fresh() -> Instance:
            return Instance(
                base.conversation_id, base.spans, caller=base.caller, recording=recording
            )

        n_scores = len(evaluate(fresh(), evaluators))  # warm-up
        done = 0
        spent = 0.0
        while spent < seconds:
            batch = [fresh() for _ in range(10)]
            start = time.perf_counter()
            for inst in batch:
                evaluate(inst, evaluators)
            spent += time.perf_counter() - start
            done += len(batch)
    return done / spent, done, n_scores


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time to spend per measurement")
    ap.add_argument("--no-audio", action="store_true", help="leave out the recording analysis")
    args = ap.parse_args(argv)
    modes = [False] if args.no_audio else [True, False]
    for audio in modes:
        rate, done, n_scores = run(args.seconds, audio)
        what = "all built-in evaluators" if audio else "all built-ins except audio"
        print(
            f"{rate:8.1f} instances/s  ({what}; 10-turn call, {n_scores} scores each, "
            f"{done} instances, {1000 / rate:.2f} ms per instance)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
