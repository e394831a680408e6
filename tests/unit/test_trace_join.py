"""Joining spans to calls by the keys a stranger's agent carries, in any arrival order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.trace import conventions as c
from harness.trace.collector import Collector
from harness.trace.instance import Span, SpanLink
from harness.trace.join import Joiner, join_values
from harness.trace.otlp import group_by_conversation

T0 = 1_763_750_000 * 10**9
ROOM, SID, DISPATCH, JOB = "harness-c-1", "RM_abc", "AD_xyz", "AJ_123"
TRACE_JOB = "1" * 32
TRACE_BG = "2" * 32
TRACE_WF = "3" * 32
TRACE_OTHER = "4" * 32


def lk_span(
    n: int,
    name: str,
    *,
    trace: str = TRACE_JOB,
    parent: int | None = None,
    attrs: dict | None = None,
    service: str = "pizza-agent",
    scope: str = c.LIVEKIT_SCOPE,
    links: tuple[SpanLink, ...] = (),
) -> Span:
    return Span(
        trace_id=trace,
        span_id=f"{n:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        name=name,
        start_ns=T0 + n * 1000,
        end_ns=T0 + n * 1000 + 500,
        attributes=dict(attrs or {}),
        resource={c.SERVICE_NAME: service},
        scope_name=scope,
        links=links,
    )


def stranger_call() -> list[Span]:
    """What a stock livekit-agents worker exports for one call: no conversation.id."""
    return [
        lk_span(
            1,
            "job_entrypoint",
            attrs={
                c.LK_JOB_ID: JOB,
                c.LK_PII_ROOM_NAME: ROOM,
                c.LK_ROOM_SID: SID,
                c.LK_DISPATCH_ID: DISPATCH,
                c.GEN_AI_CONVERSATION_ID: SID,
            },
        ),
        lk_span(2, "agent_session", parent=1, attrs={c.GEN_AI_CONVERSATION_ID: SID}),
        lk_span(3, "user_turn", parent=2, attrs={c.GEN_AI_CONVERSATION_ID: SID}),
        lk_span(4, "agent_turn", parent=2),  # no key: joins by its trace
        # a span in another trace that carries only the job id (learned from job_entrypoint)
        lk_span(5, "upload", trace=TRACE_BG, attrs={c.LK_JOB_ID: JOB}),
        # the after-call workflow: a new trace, linked to the call's
        lk_span(
            6,
            "after_call",
            trace=TRACE_WF,
            service="pizza-workflow",
            scope="workflow",
            links=(SpanLink(TRACE_JOB, f"{1:016x}"),),
        ),
    ]


def strangers() -> list[Span]:
    return [lk_span(9, "worker_health", trace=TRACE_OTHER, service="pizza-agent", scope="x")]


def test_join_values_are_read_from_span_then_resource_in_key_order():
    s = lk_span(1, "x", attrs={c.LK_JOB_ID: JOB, c.GEN_AI_CONVERSATION_ID: SID})
    assert join_values(s) == (SID, JOB)


def test_livekit_spans_without_a_layer_are_the_conversational_agents():
    assert lk_span(1, "agent_turn").layer == c.LAYER_CONVERSATIONAL
    assert lk_span(1, "x", scope="other").layer is None


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_stranger_call_joins_whatever_the_order_and_when_the_call_is_registered(data):
    call, others = stranger_call(), strangers()
    spans = data.draw(st.permutations(call + others))
    register_at = data.draw(st.integers(0, len(spans)))
    col = Collector()
    for i, s in enumerate(spans):
        if i == register_at:
            col.register_call("c-1", [ROOM, SID, DISPATCH])
        col.add_spans([s])
    if register_at == len(spans):
        col.register_call("c-1", [ROOM, SID, DISPATCH])
    got = col.instance("c-1")
    assert {s.span_id for s in got.spans} == {s.span_id for s in call}
    assert col.unassigned() == tuple(others)
    report = col.unmatched()
    assert report.total == 1 and report.by_service == (("pizza-agent", 1),)
    assert "1 span received that matched no call (from pizza-agent: 1)" in report.describe()


def test_registering_by_room_name_alone_is_enough():
    col = Collector()
    col.register_call("c-1", [ROOM])
    col.add_spans(stranger_call())
    assert len(col.instance("c-1").spans) == len(stranger_call())


def test_an_unregistered_room_stays_unmatched_in_the_collector():
    col = Collector()
    col.add_spans(stranger_call())
    assert col.conversation_ids() == []
    assert col.unmatched().total == len(stranger_call())
    assert dict(col.unmatched().by_service) == {"pizza-agent": 5, "pizza-workflow": 1}


def test_conversation_id_wins_over_a_registered_key():
    col = Collector()
    col.register_call("c-1", [SID])
    s = lk_span(1, "x", attrs={c.GEN_AI_CONVERSATION_ID: SID, c.CONVERSATION_ID: "c-9"})
    col.add_spans([s])
    assert col.spans("c-9") == (s,) and col.spans("c-1") == ()


def test_spans_after_a_call_was_discarded_are_late_not_unmatched():
    col = Collector()
    col.register_call("c-1", [ROOM, SID])
    call = stranger_call()
    col.add_spans(call[:2])
    col.discard("c-1")
    col.add_spans(call[2:4])
    assert col.late_spans("c-1") == 2 and col.stats.late == 2
    assert col.unmatched().total == 0 and col.spans("c-1") == ()


def test_parked_spans_are_bounded_and_the_dropped_are_counted_by_service():
    j = Joiner(max_parked=2)
    for n in range(5):
        j.add(lk_span(n + 1, "x", trace=f"{n + 1:032x}", service=f"s{n % 2}"))
    report = j.unmatched()
    assert (report.parked, report.dropped) == (2, 3)
    assert dict(report.by_service) == {"s0": 3, "s1": 2}
    assert "3 of them dropped" in report.describe()


def test_expire_drops_parked_spans_older_than_the_horizon():
    j = Joiner()
    j.add(lk_span(1, "x", trace=TRACE_JOB), now=1.0)
    j.add(lk_span(2, "x", trace=TRACE_BG), now=5.0)
    assert j.expire(older_than=3.0) == 1
    assert [s.span_id for s in j.parked()] == [f"{2:016x}"]
    assert j.unmatched().dropped == 1


def test_a_long_chain_of_links_is_released_without_recursion():
    # span k links to trace k-1; they arrive newest first, then the first trace joins
    n = 5000
    spans = [
        lk_span(
            k + 10,
            "x",
            trace=f"{k + 10:032x}",
            scope="other",
            links=(SpanLink(f"{k + 9:032x}", "1" * 16),),
        )
        for k in range(1, n)
    ]
    j = Joiner(max_parked=n)
    for s in reversed(spans):
        assert j.add(s) == []
    root = lk_span(10, "root", trace=f"{10:032x}", scope="other", attrs={c.CONVERSATION_ID: "c"})
    assert len(j.add(root)) == n


def test_files_from_an_agent_that_never_heard_of_us_group_by_room():
    other_sid = "RM_other"
    second = [
        lk_span(
            21,
            "job_entrypoint",
            trace="5" * 32,
            attrs={c.LK_ROOM_SID: other_sid, c.GEN_AI_CONVERSATION_ID: other_sid},
        ),
        lk_span(22, "agent_turn", trace="5" * 32, parent=21),
    ]
    groups, rest = group_by_conversation(stranger_call() + second + strangers())
    assert {cid: len(v) for cid, v in groups.items()} == {SID: 6, other_sid: 2}
    assert rest == strangers()
    groups, rest = group_by_conversation(stranger_call(), adopt=False)
    assert groups == {} and len(rest) == 6
