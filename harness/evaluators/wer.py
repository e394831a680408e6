"""Word error rate of the agent's speech recognition against what the caller really said."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jiwer

from harness.evaluators.base import UNIT_RATIO, BaseEvaluator, MetricInfo, Score
from harness.evaluators.text import normalize
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance


class WordErrorRate(BaseEvaluator):
    """WER of what the agent heard against what the caller said, after :func:`normalize`
    (lower-case, numbers as words, punctuation stripped; see :mod:`harness.evaluators.text`).

    The reference is the turn's ``caller_said`` (the scenario text the synthetic caller
    spoke); the hypothesis is ``agent_heard`` (``lk.pii.user_transcript`` of the matched
    ``user_turn`` span, else the user transcript the caller read from the room).

    - ``turn_wer`` (ratio), per caller turn: ``(S + D + I) / N`` over the turn's words
      (jiwer's alignment), N the number of reference words. It can exceed 1.
    - ``wer`` (ratio), per call: ``ΣS+D+I / ΣN`` over the scored turns (corpus WER, so long
      turns weigh more than short ones).

    A turn is scored when its reference has at least one word and its hypothesis is known.
    A hypothesis of ``""`` (the agent heard nothing) counts as all deletions, but only when
    the call shows that transcripts were observable at all (some turn has a non-empty
    ``agent_heard``); otherwise an empty transcript is treated as unknown and the call gets
    no WER. Production traces have no reference, hence no WER.
    """

    name = "wer"
    metrics = (
        MetricInfo("turn_wer", UNIT_RATIO, "word error rate of one caller turn", c.SPAN_USER_TURN),
        MetricInfo("wer", UNIT_RATIO, "corpus word error rate of the call's caller turns"),
    )

    def evaluate(self, instance: Instance) -> list[Score]:
        turns = [t for t in instance.turns if t.kind != "greeting"]
        observable = any(t.agent_heard and t.agent_heard.strip() for t in instance.turns)
        refs: list[str] = []
        hyps: list[str] = []
        out: list[Score] = []
        errors = 0
        words = 0
        for t in turns:
            ref = normalize(t.caller_said)
            if not ref or t.agent_heard is None:
                continue
            hyp = normalize(t.agent_heard)
            if not hyp and not observable:
                continue
            n = len(ref.split())
            if hyp:
                o = jiwer.process_words(ref, hyp)
                s, d, i = o.substitutions, o.deletions, o.insertions
            else:
                s, d, i = 0, n, 0
            errors += s + d + i
            words += n
            refs.append(ref)
            hyps.append(hyp)
            out.append(
                Score(
                    "turn_wer",
                    (s + d + i) / n,
                    UNIT_RATIO,
                    span=t.user_turn.name if t.user_turn is not None else None,
                    layer=c.LAYER_CONVERSATIONAL,
                    turn=t.index,
                    detail=f"S={s} D={d} I={i} N={n}; said {ref!r}, heard {hyp!r}",
                )
            )
        if words:
            out.append(
                Score(
                    "wer",
                    errors / words,
                    UNIT_RATIO,
                    layer=c.LAYER_CONVERSATIONAL,
                    detail=f"{errors} errors in {words} words over {len(refs)} turns",
                )
            )
        return out
