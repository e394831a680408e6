"""Measure the clinic recogniser's word error rate on the smoke scenarios' caller sentences.

    .venv/bin/python -m examples.clinic.wer [scenario.yaml ...]

Every ``say`` in ``scenarios/smoke/*.yaml`` (or the files given) is spoken with the
synthetic caller's default voice (espeak-ng ``en-us`` at 160 words per minute, 22050 Hz),
resampled to 48 kHz as it is published into the room and then to 16 kHz as the agent
receives it, and decoded by exactly the agent's recogniser (:func:`stt.transcribe`).
Prints each sentence with its hypothesis and the aggregate WER (lower case, punctuation
stripped).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import yaml

from harness.audio.clip import Clip

from .stt import load_decoder, transcribe

REPO = Path(__file__).resolve().parents[2]
DEFAULT_GLOB = "scenarios/smoke/*.yaml"
_PUNCT = re.compile(r"[^a-z0-9' ]+")


def caller_sentences(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        doc = yaml.safe_load(path.read_text()) or {}
        for turn in doc.get("turns") or []:
            if isinstance(turn, dict) and turn.get("say"):
                out.append(str(turn["say"]))
    return out


def speak(text: str, voice: str = "en-us", words_per_minute: int = 160) -> Clip:
    """The caller's default voice: espeak-ng at 22050 Hz."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    return Clip.from_int16(np.frombuffer(wav[44:], dtype=np.int16), 22050)


def normalize(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", type=Path, help=f"default: {DEFAULT_GLOB}")
    parser.add_argument(
        "--sentences", type=Path, help="a text file of extra caller sentences, one a line"
    )
    parser.add_argument("--voice", default="en-us")
    parser.add_argument("--wpm", type=int, default=160)
    args = parser.parse_args(argv)

    paths = args.scenarios or sorted(REPO.glob(DEFAULT_GLOB))
    sentences = caller_sentences(paths)
    if args.sentences:
        extra = args.sentences.read_text().splitlines()
        sentences += [line.strip() for line in extra if line.strip()]
    if not sentences:
        print("no caller sentences found", file=sys.stderr)
        return 1

    decoder = load_decoder()
    refs, hyps = [], []
    for sentence in sentences:
        clip = speak(sentence, args.voice, args.wpm).resample(48000).resample(16000)
        hyp, _ = transcribe(decoder, clip)
        ref, hyp = normalize(sentence), normalize(hyp)
        refs.append(ref)
        hyps.append(hyp)
        mark = " " if ref == hyp else "*"
        print(f"{mark} ref: {ref}\n  hyp: {hyp}")
    words = sum(len(r.split()) for r in refs)
    wer = jiwer.wer(refs, hyps)
    print(f"\n{len(refs)} sentences, {words} words, WER {wer:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
