"""The incident loop end to end: a call against the buggy clinic, exported like production
(trace plus stereo recording), becomes a regression test with one command. That test fails
against the buggy agent, passes against the fixed one, and replays the recorded caller audio."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.scenario.model import load_scenario

pytestmark = pytest.mark.e2e
SUITES = Path(__file__).parent / "suites"
BUG = {"CLINIC_BUG": "date_loop"}


def read_channel(path: Path, channel: int | None = None, rate: int = 48000) -> np.ndarray:
    """One channel of a WAV file, at ``rate``."""
    from scipy.signal import resample_poly

    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
        n, src = w.getnchannels(), w.getframerate()
    pcm = pcm.reshape(-1, n)[:, channel or 0] if n > 1 else pcm
    return pcm if src == rate else resample_poly(pcm, rate, src)


def best_correlation(segment: np.ndarray, haystack: np.ndarray) -> float:
    """Peak normalised cross-correlation of ``segment`` anywhere in ``haystack``."""
    from scipy.signal import fftconvolve

    seg = segment - segment.mean()
    corr = fftconvolve(haystack, seg[::-1], mode="valid")
    energy = fftconvolve(haystack**2, np.ones(len(seg)), mode="valid")
    hay_mean = fftconvolve(haystack, np.ones(len(seg)), mode="valid") / len(seg)
    var = np.maximum(energy - len(seg) * hay_mean**2, 1e-9)
    return float(np.max(corr / np.sqrt(var * np.sum(seg**2))))


def test_incident_import_replays_and_tells_buggy_from_fixed(clinic_session, tmp_path, capsys):
    source = load_scenario(SUITES / "date_correction.yaml")
    with clinic_session(env=BUG) as session:
        production = session.run(source)
    assert production.result is not None and production.result.error is None, production.describe()
    call = production.artifacts  # trace.jsonl + recording.wav: what production exports

    out, audio = tmp_path / "scenarios" / "incidents", tmp_path / "audio_fixtures" / "incidents"
    code = main(
        [
            "incident",
            "import",
            str(call / "trace.jsonl"),
            "--recording",
            str(call / "recording.wav"),
            "--caller-channel",
            "0",
            "--id",
            "INC-LOOP",
            "--out",
            str(out),
            "--audio-dir",
            str(audio),
            "--expected",
            '{"tool_called": "request_booking"}',
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    fixture = out / "INC-LOOP.yaml"
    print("\n" + fixture.read_text())
    regression = load_scenario(fixture)
    assert regression.expect is not None and regression.expect.no_loop
    assert regression.incident is not None and regression.incident.failing_layer == "llm_dialog"

    with clinic_session(env=BUG) as session:
        buggy = session.run(regression)
    with clinic_session() as session:
        fixed = session.run(regression)
    print(f"buggy agent: {buggy.verdict}: {buggy.failures[:3]}")
    print(f"fixed agent: {fixed.verdict}")
    assert buggy.verdict == "fail" and any("repeated itself" in f for f in buggy.failures)
    assert fixed.verdict == "pass", fixed.describe()

    # the replayed caller audio is the recorded caller audio, not new speech
    replayed = read_channel(fixed.artifacts / "recording.wav", 0)
    turn_wavs = sorted(audio.glob("INC-LOOP/turn-*.wav"))
    assert turn_wavs, "the import cut no caller audio from the recording"
    scores = [best_correlation(read_channel(w), replayed) for w in turn_wavs]
    print(
        "correlation of each recorded turn with the replayed caller channel:",
        [round(s, 3) for s in scores],
    )
    assert min(scores) > 0.9
