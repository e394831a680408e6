"""Per-turn latencies, in milliseconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.evaluators._common import span_turns
from harness.evaluators.base import UNIT_MS, BaseEvaluator, MetricInfo, Score
from harness.trace import conventions as c
from harness.trace.instance import seconds_to_ms

if TYPE_CHECKING:
    from harness.trace.instance import Instance

_SPAN_METRICS = (
    # (span name, attribute, score name)
    (c.SPAN_AGENT_TURN, c.LK_E2E_LATENCY, "e2e_latency"),
    (c.SPAN_LLM_NODE, c.LK_RESPONSE_TTFT, "llm_ttft"),
    (c.SPAN_TTS_NODE, c.LK_RESPONSE_TTFB, "tts_ttfb"),
)


class Latency(BaseEvaluator):
    """Per-turn latencies, each a Score in milliseconds.

    - ``response_latency``: measured by the synthetic caller, from the end of its own
      speech to the onset of the agent's audio as heard in the room (the turn's
      ``response_latency_ms``). One per caller turn that got an answer; absent for
      production traces. ``layer`` is ``conversational``, ``span`` None.
    - ``e2e_latency``: ``lk.e2e_latency`` of each ``agent_turn`` span (livekit-agents: from
      the user's end of speech to the agent starting to speak).
    - ``llm_ttft``: ``lk.response.ttft`` of each ``llm_node`` span (time to the LLM's first
      token). A turn with tool calls has several llm_node spans, hence several values.
    - ``tts_ttfb``: ``lk.response.ttfb`` of each ``tts_node`` span (time to the first audio
      byte from TTS).
    - ``end_of_turn_delay``: ``lk.end_of_turn_delay`` of the turn (its ``user_turn`` span,
      else its ``agent_turn``), from the end of the caller's speech to the turn decision.
    - ``transcription_delay``: ``lk.transcription_delay`` of the turn, likewise, from the
      end of the caller's speech to the final transcript.

    Span-read values carry that span's type and layer; ``turn`` is the turn the span
    belongs to (None for a span outside every turn). An attribute that is absent, not a
    number, NaN or infinite gives no Score. Values are kept as measured, including
    negative ones (an agent talking over the caller has a negative response latency).
    """

    name = "latency"
    metrics = (
        MetricInfo("response_latency", UNIT_MS, "caller-measured end of speech to agent audio"),
        MetricInfo("e2e_latency", UNIT_MS, "lk.e2e_latency of agent_turn", c.SPAN_AGENT_TURN),
        MetricInfo("llm_ttft", UNIT_MS, "lk.response.ttft of llm_node", c.SPAN_LLM_NODE),
        MetricInfo("tts_ttfb", UNIT_MS, "lk.response.ttfb of tts_node", c.SPAN_TTS_NODE),
        MetricInfo("end_of_turn_delay", UNIT_MS, "lk.end_of_turn_delay", c.SPAN_USER_TURN),
        MetricInfo("transcription_delay", UNIT_MS, "lk.transcription_delay", c.SPAN_USER_TURN),
    )

    def evaluate(self, instance: Instance) -> list[Score]:
        out: list[Score] = []
        for t in instance.turns:
            if t.response_latency_ms is not None:
                out.append(
                    Score(
                        "response_latency",
                        t.response_latency_ms,
                        UNIT_MS,
                        layer=c.LAYER_CONVERSATIONAL,
                        turn=t.index,
                        detail="caller-measured: end of caller speech to agent audio onset",
                    )
                )
            for name, attr in (
                ("end_of_turn_delay", c.LK_END_OF_TURN_DELAY),
                ("transcription_delay", c.LK_TRANSCRIPTION_DELAY),
            ):
                # the turn's user_turn span first, then its agent_turns (as the Turn view does)
                sources = ([t.user_turn] if t.user_turn is not None else []) + list(t.agent_turns)
                for s in sources:
                    ms = seconds_to_ms(s.attributes.get(attr))
                    if ms is not None:
                        out.append(
                            Score(name, ms, UNIT_MS, span=s.name, layer=s.layer, turn=t.index)
                        )
                        break
        turn_of = span_turns(instance)
        wanted = {span: (attr, name) for span, attr, name in _SPAN_METRICS}
        for s in instance.spans:
            hit = wanted.get(s.name)
            if hit is None:
                continue
            ms = seconds_to_ms(s.attributes.get(hit[0]))
            if ms is None:
                continue
            out.append(
                Score(hit[1], ms, UNIT_MS, span=s.name, layer=s.layer, turn=turn_of.get(s.key))
            )
        return out
