"""The agent's speech as the caller heard it, turn by turn, from the stereo recording: cut
short of its transcript, broken by a silence, or glitched."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from harness.evaluators._recording import FRAME_MS, Recording, TurnWindow, runs
from harness.evaluators.base import UNIT_BOOL, UNIT_COUNT, UNIT_MS, BaseEvaluator, MetricInfo, Score
from harness.evaluators.text import words
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance

__all__ = ["SpeechIntegrity"]


class SpeechIntegrity(BaseEvaluator):
    """Whether the agent's speech in each turn reached the caller whole.

    The recording is cut into 10 ms frames; an agent (right channel) frame is *speech* when
    its RMS is at least ``activity_dbfs`` (−45 dBFS, the level the caller detects agent
    speech at). Each turn is read in its window, from its start (``caller_start``; the
    recording's start for the greeting) to the next turn's start; a turn whose agent speech
    was interrupted (``lk.interrupted``) or that cannot be placed on the recording (no
    ``started_at`` in the caller side-file) is left out.

    - ``speech_cut`` (bool, per turn): the agent's speech ended before its transcript's words
      could have been spoken at the rate this agent is measured to speak. A turn with agent
      text (:attr:`Turn.agent_said`) of at least ``min_words`` (3) words is checked; its
      rate is its speech frames × 10 ms / words. The call's reference rate is the 75th
      percentile of the checked turns' rates, when at least ``min_turns`` (3) turns are
      checked (robust to up to a quarter of the turns being cut); a turn is cut when its
      rate is below ``cut_ratio`` (0.6) × the reference, or below ``min_ms_per_word`` (150
      ms, 400 words a minute, faster than any voice) whatever the reference.
    - ``speech_gap_longest`` (ms, per turn with agent speech): the longest run of frames in
      which neither channel is active, between two agent speech frames of the turn: a
      silence inside the agent's utterance. A silence during which the caller spoke is not
      counted (the caller took the floor), nor one of ``max_gap_ms`` (5000 ms) or more (two
      utterances with dead air between them: ``dead_air`` of the audio evaluator).
    - ``speech_glitches`` (count, per turn with agent speech): dropouts plus clipping bursts
      in the turn's agent speech. A dropout is a run of 1 to 4 frames below ``dip_dbfs``
      (−40 dBFS) whose deepest frame lies at least ``dip_depth_db`` (20 dB) below the
      loudest of the 3 frames on each side, both of which are at least ``loud_dbfs`` (−30
      dBFS): the sound stops dead inside loud speech. A clipping burst is a run of at least
      3 samples at ``clip_level`` (0.999) of full scale; bursts within 50 ms count once.
    - ``glitchy_speech`` (bool, per turn with at least 1 s of agent speech): at least 2
      glitches, at ``max_glitches_per_s`` (4) or more per second of the turn's agent speech.
      Natural speech (espeak-ng through Opus, measured on the reference deployment) has
      0 to 1.6 dropouts a second by this definition; the stops of consonants make them.

    No usable recording, no Score.
    """

    name = "speech"
    metrics = (
        MetricInfo(
            "speech_cut",
            UNIT_BOOL,
            "agent speech ended before its transcript could have been said at its own rate",
            layer=c.LAYER_CONVERSATIONAL,
        ),
        MetricInfo(
            "speech_gap_longest",
            UNIT_MS,
            "longest silence inside the agent's speech in one turn",
            layer=c.LAYER_CONVERSATIONAL,
        ),
        MetricInfo(
            "speech_glitches",
            UNIT_COUNT,
            "dropouts and clipping bursts in the agent's speech in one turn",
            layer=c.LAYER_CONVERSATIONAL,
        ),
        MetricInfo(
            "glitchy_speech",
            UNIT_BOOL,
            "a turn whose agent speech had glitches at 4 a second or more",
            layer=c.LAYER_CONVERSATIONAL,
        ),
    )

    def __init__(
        self,
        *,
        activity_dbfs: float = -45.0,
        loud_dbfs: float = -30.0,
        min_words: int = 3,
        min_turns: int = 3,
        cut_ratio: float = 0.6,
        min_ms_per_word: float = 150.0,
        max_gap_ms: float = 5000.0,
        clip_level: float = 0.999,
        dip_dbfs: float = -40.0,
        dip_depth_db: float = 20.0,
        max_glitches_per_s: float = 4.0,
    ) -> None:
        if not 0 < cut_ratio <= 1:
            raise ValueError(f"cut_ratio={cut_ratio!r}: a fraction in (0, 1]")
        if not 0 < clip_level <= 1:
            raise ValueError(f"clip_level={clip_level!r}: a fraction of full scale in (0, 1]")
        if loud_dbfs < activity_dbfs:
            raise ValueError(
                f"loud_dbfs={loud_dbfs!r} is below activity_dbfs={activity_dbfs!r}: "
                "loud speech must be louder than speech"
            )
        self.activity_dbfs = activity_dbfs
        self.loud_dbfs = loud_dbfs
        self.min_words = min_words
        self.min_turns = min_turns
        self.cut_ratio = cut_ratio
        self.min_ms_per_word = min_ms_per_word
        self.max_gap_ms = max_gap_ms
        self.clip_level = clip_level
        self.dip_dbfs = dip_dbfs
        self.dip_depth_db = dip_depth_db
        self.max_glitches_per_s = max_glitches_per_s

    def evaluate(self, instance: Instance) -> list[Score]:
        rec = Recording.of(instance)
        if rec is None:
            return []
        agent_on = rec.agent_db >= self.activity_dbfs
        caller_on = rec.caller_db >= self.activity_dbfs
        windows = [w for w in rec.windows(instance) if w.turn.interrupted is not True]
        out: list[Score] = []
        out.extend(self._cuts(windows, agent_on))
        for w in windows:
            spoken = np.flatnonzero(agent_on[w.start : w.end])
            if spoken.size == 0:
                continue
            out.append(self._gap(w, spoken, agent_on, caller_on))
            out.extend(self._glitches(rec, w, spoken, agent_on))
        return out

    def _score(self, name: str, value: float, unit: str, w: TurnWindow, detail: str) -> Score:
        return Score(
            name, value, unit, layer=c.LAYER_CONVERSATIONAL, turn=w.turn.index, detail=detail
        )

    def _cuts(self, windows: list[TurnWindow], agent_on: np.ndarray) -> list[Score]:
        checked = []
        for w in windows:
            n = len(words(w.turn.agent_said))
            if n >= self.min_words:
                voiced = float(agent_on[w.start : w.end].sum()) * FRAME_MS
                checked.append((w, n, voiced, voiced / n))
        if not checked:
            return []
        rates = [r for *_, r in checked]
        reference = float(np.percentile(rates, 75)) if len(rates) >= self.min_turns else None
        floor = self.min_ms_per_word
        needed = max(floor, self.cut_ratio * reference) if reference is not None else floor
        ref_text = (
            f"the call's rate {reference:.0f} ms a word × {self.cut_ratio:g}"
            if reference is not None
            else f"{floor:.0f} ms a word (fewer than {self.min_turns} turns to measure a rate)"
        )
        return [
            self._score(
                "speech_cut",
                1.0 if rate < needed else 0.0,
                UNIT_BOOL,
                w,
                f"{voiced:.0f} ms of agent speech for {n} words ({rate:.0f} ms a word; "
                f"needs {needed:.0f}: {ref_text})",
            )
            for w, n, voiced, rate in checked
        ]

    def _gap(
        self, w: TurnWindow, spoken: np.ndarray, agent_on: np.ndarray, caller_on: np.ndarray
    ) -> Score:
        longest, where = 0, None
        limit = self.max_gap_ms / FRAME_MS
        for a, b in itertools.pairwise(spoken):
            gap = int(b - a - 1)
            if gap <= longest or gap >= limit:
                continue
            lo, hi = w.start + int(a) + 1, w.start + int(b)
            if caller_on[lo:hi].any():
                continue
            longest, where = gap, lo
        detail = (
            f"{longest * FRAME_MS} ms of silence at {where * FRAME_MS / 1000:.2f} s"
            if where is not None
            else "no silence inside the agent's speech"
        )
        return self._score("speech_gap_longest", float(longest * FRAME_MS), UNIT_MS, w, detail)

    def _glitches(
        self, rec: Recording, w: TurnWindow, spoken: np.ndarray, agent_on: np.ndarray
    ) -> list[Score]:
        first, last = int(spoken[0]), int(spoken[-1])
        db = rec.agent_db[w.start + first : w.start + last + 1]
        dropouts = 0
        for a, b in runs(db < self.dip_dbfs):
            if b - a > 4 or a < 3 or b + 3 > len(db):
                continue
            left, right = float(db[a - 3 : a].max()), float(db[b : b + 3].max())
            if min(left, right) < self.loud_dbfs:
                continue
            if float(db[a:b].min()) <= min(left, right) - self.dip_depth_db:
                dropouts += 1
        level = int(np.ceil(self.clip_level * 32768.0))
        x = rec.pcm[(w.start + first) * rec.frame : (w.start + last + 1) * rec.frame, 1]
        hot = (x >= level) | (x <= -level)
        bursts, last_end = 0, None
        for a, b in runs(hot):
            if b - a < 3:
                continue
            if last_end is None or a - last_end > rec.rate // 20:
                bursts += 1
            last_end = b
        glitches = dropouts + bursts
        speech_s = spoken.size * FRAME_MS / 1000
        detail = f"{dropouts} dropouts, {bursts} clipping bursts in {speech_s:.1f} s of speech"
        out = [self._score("speech_glitches", float(glitches), UNIT_COUNT, w, detail)]
        if speech_s >= 1.0:
            per_s = glitches / speech_s
            bad = glitches >= 2 and per_s >= self.max_glitches_per_s
            out.append(
                self._score(
                    "glitchy_speech",
                    1.0 if bad else 0.0,
                    UNIT_BOOL,
                    w,
                    f"{per_s:.1f} glitches a second ({detail})",
                )
            )
        return out
