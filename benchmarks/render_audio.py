#!/usr/bin/env python3
"""Seconds of audio rendered per CPU second for a condition chain.

    python benchmarks/render_audio.py [--preset bad_cell] [--seconds 10] [--rate 48000] [--runs 5]

CPU time is this process's (``time.process_time``) plus its finished children's
(``os.times``), so effects that run ffmpeg are charged for it. One warm-up run (which loads
and resamples the noise beds) is not counted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import audio


def cpu_seconds() -> float:
    t = os.times()
    return time.process_time() + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="bad_cell", choices=audio.preset_names())
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    chain = audio.load_preset(args.preset)
    clip = audio.speech_like(args.seconds, args.rate, seed=1)
    chain.apply(clip, seed=0)  # warm-up

    start_cpu, start_wall = cpu_seconds(), time.perf_counter()
    for seed in range(args.runs):
        chain.apply(clip, seed=seed)
    cpu = cpu_seconds() - start_cpu
    wall = time.perf_counter() - start_wall

    audio_s = args.seconds * args.runs
    print(f"chain: {chain!r}")
    print(f"clip: {args.seconds:g} s at {args.rate} Hz, {args.runs} runs")
    print(f"cpu: {cpu:.3f} s, wall: {wall:.3f} s")
    print(f"{audio_s / cpu:.1f} s of audio per CPU second ({args.preset})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
