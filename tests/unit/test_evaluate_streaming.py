"""Streaming evaluation of an export: the same Instances, joins and verdicts as reading the
file whole, with memory bounded by the conversations in progress, not the file."""

from __future__ import annotations

import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.gates import ScoreStore, default_gates, evaluate_gates
from harness.gates.scoring import evaluate_path, score_instance
from harness.trace import conventions as c
from harness.trace.instance import Span, SpanLink
from harness.trace.otlp import (
    TraceFileReport,
    group_by_conversation,
    iter_instances,
    load_instances,
    read_spans,
    spans_to_json,
)
from tests.fixtures.instances.build import clinic_10_turns
from tests.unit.test_trace_join import SID, lk_span, stranger_call, strangers

SID2 = "RM_two"
TRACE_TWO = "5" * 32
TRACE_TWO_WF = "6" * 32


def second_stranger(compete: bool = True) -> list[Span]:
    """Another livekit-agents call: room ids on job_entrypoint, gen_ai ids, a span that
    joins by its trace only, a workflow linked to its trace and, with ``compete``, a span
    that carries the first call's room but sits in this call's trace (the two calls compete
    for that trace: arrival order decides, in both readings alike)."""
    spans = [
        lk_span(
            21,
            "job_entrypoint",
            trace=TRACE_TWO,
            attrs={c.LK_ROOM_SID: SID2, c.GEN_AI_CONVERSATION_ID: SID2, c.LK_JOB_ID: "AJ_2"},
        ),
        lk_span(22, "agent_session", trace=TRACE_TWO, parent=21),
        lk_span(23, "llm_node", trace=TRACE_TWO, parent=22, attrs={c.LK_RESPONSE_TTFT: 0.4}),
        lk_span(
            25,
            "after_call",
            trace=TRACE_TWO_WF,
            service="pizza-workflow",
            links=(SpanLink(TRACE_TWO, f"{21:016x}"),),
        ),
        lk_span(26, "upload", trace="7" * 32, attrs={c.LK_JOB_ID: "AJ_2"}),
    ]
    if compete:
        spans.append(
            lk_span(
                24, "tts_node", trace=TRACE_TWO, parent=22, attrs={c.GEN_AI_CONVERSATION_ID: SID}
            )
        )
    return spans


def pool(compete: bool = True) -> list[Span]:
    """Spans of three conversations joined every way the rules allow, and a stray."""
    stamped = list(clinic_10_turns("conv-stamped").spans[:12])
    return stamped + stranger_call() + second_stranger(compete) + strangers()


def write_lines(path: Path, lines: list[list[Span]]) -> Path:
    path.write_text("".join(json.dumps(spans_to_json(group)) + "\n" for group in lines))
    return path


def streamed(path: Path) -> tuple[dict, TraceFileReport]:
    rep = TraceFileReport(path)
    got = {}
    for inst in iter_instances(path, report=rep):
        assert inst.conversation_id not in got  # each conversation once
        got[inst.conversation_id] = inst
    return got, rep


def assert_same_as_in_memory(path: Path) -> TraceFileReport:
    whole = load_instances(path)
    got, rep = streamed(path)
    assert got == whole
    for cid, inst in whole.items():
        assert set(got[cid].data_errors) == set(inst.data_errors)
    _, unassigned = group_by_conversation(read_spans(path))
    assert rep.unjoined_spans == len(unassigned)
    assert rep.conversations == len(whole)
    return rep


def test_streamed_equals_in_memory_on_a_multi_conversation_export(tmp_path: Path) -> None:
    spans = pool(compete=False)
    # interleaved as a collector writes them: batches mixing the calls, strays in between
    lines = [spans[k : k + 5] for k in range(0, len(spans), 5)][::-1]
    path = write_lines(tmp_path / "export.jsonl", lines)
    rep = assert_same_as_in_memory(path)
    got, _ = streamed(path)
    assert sorted(got) == ["RM_abc", "RM_two", "conv-stamped"]
    # joined by room id, by trace membership, by a learned job id and by a link
    names = {s.name for s in got[SID].spans}
    assert {"job_entrypoint", "agent_turn", "upload", "after_call"} <= names
    assert {s.name for s in got[SID2].spans} >= {"llm_node", "after_call", "upload"}
    assert rep.unjoined == {"pizza-agent": 1}  # worker_health: counted, never dropped


def test_streamed_scores_give_the_same_verdicts(tmp_path: Path) -> None:
    calls = [clinic_10_turns(f"conv-{k}") for k in range(4)]
    lines = [[s] for k in range(0, 52) for inst in calls for s in inst.spans[k : k + 1]]
    path = write_lines(tmp_path / "export.jsonl", lines)
    store = ScoreStore()
    for inst in load_instances(path).values():
        store.add(score_instance(inst), traced=inst.trace_state != "none")
    result = evaluate_path(path)
    assert result.calls == 4 and result.lines() == []
    gates = default_gates()
    assert [(v.name, v.status, v.value, v.n) for v in evaluate_gates(gates, result.store)] == [
        (v.name, v.status, v.value, v.n) for v in evaluate_gates(gates, store)
    ]
    for metric in store.metrics:
        assert sorted(result.store.select(metric).samples()) == sorted(
            store.select(metric).samples()
        )


def _variant(s: Span) -> Span:
    """Another version of the same span (same ids): later end, one attribute more."""
    return replace(s, end_ns=s.end_ns + 1000, attributes={**s.attributes, "retry": True})


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    order=st.permutations(range(len(pool()))),
    cuts=st.lists(st.booleans(), min_size=len(pool()), max_size=len(pool())),
    copies=st.lists(
        st.tuples(st.integers(0, len(pool()) - 1), st.booleans(), st.integers(0, 60)),
        max_size=4,
    ),
)
def test_streamed_equals_in_memory_for_any_order_and_partition(
    tmp_path: Path, order: list[int], cuts: list[bool], copies: list[tuple[int, bool, int]]
) -> None:
    base = pool()
    spans = [base[i] for i in order]
    for i, changed, at in copies:  # exporter retries: the same span again, or a new version
        spans.insert(min(at, len(spans)), _variant(base[i]) if changed else base[i])
    lines: list[list[Span]] = [[]]
    for k, s in enumerate(spans):
        lines[-1].append(s)
        if cuts[k % len(cuts)]:
            lines.append([])
    path = write_lines(tmp_path / "export.jsonl", [ln for ln in lines if ln])
    assert_same_as_in_memory(path)


# --- bounded memory ----------------------------------------------------------------------


def lean_export(path: Path, n_spans: int, per_call: int = 50, at_once: int = 10) -> Path:
    """Calls of ``per_call`` spans, ``at_once`` in progress together, in time order, one
    line per batch of 200 spans; two of three calls carry only livekit-agents' room id
    (they wait for adoption at the end of the file), one in three ``conversation.id``."""
    lines: list[str] = []
    batch: list[Span] = []
    for wave in range(n_spans // (per_call * at_once)):
        for i in range(per_call):
            for k in range(at_once):
                call = wave * at_once + k
                key = (
                    {c.CONVERSATION_ID: f"conv-{call}"}
                    if call % 3 == 0
                    else {c.GEN_AI_CONVERSATION_ID: f"RM_{call}"}
                )
                t = 10**18 + (wave * per_call + i) * 10**9
                batch.append(
                    Span(
                        f"{call + 1:032x}",
                        f"{i + 1:016x}",
                        None if i == 0 else f"{1:016x}",
                        "agent_turn",
                        t,
                        t + 5 * 10**8,
                        attributes={**key, c.LK_E2E_LATENCY: 0.8} if i % 2 else {},
                        resource={c.SERVICE_NAME: "agent"},
                    )
                )
                if len(batch) == 200:
                    lines.append(json.dumps(spans_to_json(batch)) + "\n")
                    batch = []
    path.write_text("".join(lines) + (json.dumps(spans_to_json(batch)) + "\n" if batch else ""))
    return path


def streamed_peak(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        n = sum(len(inst.spans) for inst in iter_instances(path))
        return n, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_memory_grows_sublinearly_with_the_file(tmp_path: Path) -> None:
    small = lean_export(tmp_path / "small.jsonl", 2_000)
    large = lean_export(tmp_path / "large.jsonl", 20_000)
    n_small, peak_small = streamed_peak(small)
    n_large, peak_large = streamed_peak(large)
    assert (n_small, n_large) == (2_000, 20_000)  # every span reached its conversation
    # ten times the spans: the index grows by a few bytes a span, the spans never pile up
    assert peak_large < 3 * peak_small, (peak_small, peak_large)
