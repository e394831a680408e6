"""Turn-taking from the stereo recording: the agent starting to talk while the caller is
still speaking."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.evaluators._recording import FRAME_MS, Recording, bridged, runs
from harness.evaluators.base import UNIT_BOOL, UNIT_MS, BaseEvaluator, MetricInfo, Score
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance

__all__ = ["TurnTaking"]


class TurnTaking(BaseEvaluator):
    """Whether the agent talked over the caller.

    The recording is cut into 10 ms frames; a frame of a channel is *active* when its RMS is
    at least ``activity_dbfs`` (−45 dBFS). The agent's speech (right channel) is its active
    frames joined across gaps shorter than ``agent_bridge_ms`` (600 ms: the pauses between
    its sentences); each stretch is an agent *onset*. The caller's turns are, with a caller
    side-file, each ``say`` turn from its ``caller_start`` to its ``caller_end`` (the
    caller's own sentence, hesitations included); without one (a production call), the
    caller's active frames (left channel) joined across gaps shorter than
    ``caller_bridge_ms`` (300 ms: the pauses between words).

    - ``talked_over`` (bool, per agent onset): 1 when the onset lies inside one of the
      caller's turns (after its start, before its end) and the agent then spoke for at least
      ``min_overlap_ms`` (200 ms) before that turn ended: it took a pause in the caller's
      sentence for its end (endpointing too eager) and spoke into the rest. An onset while
      the caller is silent is 0; the caller starting to speak over the agent (a barge-in)
      is not the agent's doing and is not counted.
    - ``talkover_ms`` (ms, per call with an agent onset): the agent's speech inside the
      caller's turns after such onsets.

    No usable recording, or no agent speech, gives no Score.
    """

    name = "turn_taking"
    metrics = (
        MetricInfo(
            "talked_over",
            UNIT_BOOL,
            "the agent started speaking while the caller was still talking",
            layer=c.LAYER_CONVERSATIONAL,
        ),
        MetricInfo(
            "talkover_ms",
            UNIT_MS,
            "time the agent spoke over the caller in one call",
            layer=c.LAYER_CONVERSATIONAL,
        ),
    )

    def __init__(
        self,
        *,
        activity_dbfs: float = -45.0,
        caller_bridge_ms: float = 300.0,
        agent_bridge_ms: float = 600.0,
        min_overlap_ms: float = 200.0,
    ) -> None:
        if min_overlap_ms < 0:
            raise ValueError(f"min_overlap_ms={min_overlap_ms!r}: must be at least 0")
        self.activity_dbfs = activity_dbfs
        self.caller_bridge_ms = caller_bridge_ms
        self.agent_bridge_ms = agent_bridge_ms
        self.min_overlap_ms = min_overlap_ms

    def evaluate(self, instance: Instance) -> list[Score]:
        rec = Recording.of(instance)
        if rec is None:
            return []
        agent_on = rec.agent_db >= self.activity_dbfs
        agent = bridged(runs(agent_on), round(self.agent_bridge_ms / FRAME_MS))
        if not agent:
            return []
        caller = _caller_turns(instance, rec)
        if caller is None:
            caller_on = rec.caller_db >= self.activity_dbfs
            caller = bridged(runs(caller_on), round(self.caller_bridge_ms / FRAME_MS))
        turn_at = _turn_of_frame(instance, rec)
        out: list[Score] = []
        total = 0
        for a, b in agent:
            inside = next(((s, e) for s, e in caller if s < a < e), None)
            overlap = 0
            if inside is not None:
                end = min(b, inside[1])
                overlap = int(agent_on[a:end].sum()) * FRAME_MS
            over = inside is not None and overlap >= self.min_overlap_ms
            if over:
                total += overlap
            out.append(
                Score(
                    "talked_over",
                    1.0 if over else 0.0,
                    UNIT_BOOL,
                    layer=c.LAYER_CONVERSATIONAL,
                    turn=turn_at(a),
                    detail=(
                        f"at {a * FRAME_MS / 1000:.2f} s the agent spoke over the caller "
                        f"for {overlap} ms"
                        if over
                        else ""
                    ),
                )
            )
        out.append(
            Score(
                "talkover_ms",
                float(total),
                UNIT_MS,
                layer=c.LAYER_CONVERSATIONAL,
                detail=f"{sum(1 for s in out if s.value)} of {len(out)} agent onsets",
            )
        )
        return out


def _caller_turns(instance: Instance, rec: Recording) -> list[tuple[int, int]] | None:
    """The caller's ``say`` turns in frames, from the side-file; None without one."""
    if rec.started_at is None or not instance.caller:
        return None
    out = []
    for t in instance.turns:
        if t.kind != "say" or t.caller_start is None or t.caller_end is None:
            continue
        a = round((t.caller_start - rec.started_at) * 1000 / FRAME_MS)
        b = round((t.caller_end - rec.started_at) * 1000 / FRAME_MS)
        if b > a:
            out.append((a, b))
    return out


def _turn_of_frame(instance: Instance, rec: Recording):
    windows = rec.windows(instance)

    def turn_at(frame: int) -> int | None:
        for w in windows:
            if w.start <= frame < w.end:
                return w.turn.index
        return None

    return turn_at
