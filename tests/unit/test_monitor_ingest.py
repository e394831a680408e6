"""Production path: 50 clinic calls (10 faulty) posted as OTLP/HTTP to the ingest receiver,
interleaved, with the after-call workflow's spans arriving late. The windows' verdicts equal
`harness evaluate` over the same instances, and the 10 faulty calls are incident candidates
that `harness incident import --candidate` turns into fixtures."""

from __future__ import annotations

import random
import time
import urllib.request

from harness.cli import main
from harness.gates import default_gates, evaluate_gates, render_table
from harness.gates.conditions import call_failures
from harness.monitor.ingest import ProductionIngest
from harness.monitor.store import MonitorStore
from harness.monitor.windows import WindowSpec, evaluate_window
from harness.trace import conventions as c
from harness.trace.otlp import save_instance, spans_to_proto
from tests.support.production import production_call

N, FAULTY_EVERY = 50, 5


def post(endpoint: str, spans) -> int:
    body = spans_to_proto(spans).SerializeToString()
    req = urllib.request.Request(
        f"{endpoint}/v1/traces",
        data=body,
        headers={"Content-Type": "application/x-protobuf"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


def test_production_calls_score_like_harness_evaluate(tmp_path, capsys):
    now = time.time()
    calls = [
        production_call(i, start=now - 900 + 10 * i, faulty=i % FAULTY_EVERY == 0) for i in range(N)
    ]
    faulty = {inst.conversation_id for i, inst in enumerate(calls) if i % FAULTY_EVERY == 0}
    # the same instances as files, for `harness evaluate`
    for inst in calls:
        save_instance(inst, tmp_path / "saved" / inst.conversation_id)

    # interleave: every call's spans in chunks of 4, chunks of all calls shuffled together;
    # the workflow's spans held back and sent last (the workflow runs after the call)
    rng = random.Random(7)
    chunks, late = [], []
    for inst in calls:
        spans = list(inst.spans)
        rng.shuffle(spans)
        live = [s for s in spans if s.layer != c.LAYER_WORKFLOW]
        late.append([s for s in spans if s.layer == c.LAYER_WORKFLOW])
        chunks += [live[k : k + 4] for k in range(0, len(live), 4)]
    rng.shuffle(chunks)

    with MonitorStore(tmp_path / "state" / "monitor.sqlite3") as store:
        ingest = ProductionIngest(
            store, tmp_path / "state", port=0, grace_s=60.0, settle_s=0.2, tick_s=0.1
        ).start()
        try:
            for chunk in chunks:
                assert post(ingest.endpoint, chunk) == 200
            time.sleep(1.0)  # the conversations are finished, the workflows are not
            assert store.count_calls() == 0, "scored before the workflow's grace period"
            for spans in late:
                assert post(ingest.endpoint, spans) == 200
            deadline = time.monotonic() + 30
            while store.count_calls(source="production") < N and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            ingest.stop()
        assert store.count_calls(source="production") == N
        assert ingest.collector.stats.late == 0
        window = evaluate_window(
            store, default_gates(), WindowSpec("1h", 3600), time.time() + 1, "production"
        )
        cands = {cand.id for cand in store.candidates()}
        records = store.calls(source="production")
    assert {r.agent_version for r in records} == {"2.3.0"}
    assert {r.environment for r in records} == {"production"}
    assert cands == faulty
    failed = {r.conversation_id for r in records if not r.passed}
    assert failed == faulty
    reasons = next(r.failures for r in records if not r.passed)
    assert any("tool call failed" in x for x in reasons)
    assert any("without approval" in x or "no approval" in x for x in reasons)

    # the same verdicts as `harness evaluate` over the same instances
    capsys.readouterr()
    main(["evaluate", str(tmp_path / "saved")])
    evaluated = capsys.readouterr().out
    table = render_table(window.verdicts)
    assert table in evaluated, f"window:\n{table}\n\nevaluate:\n{evaluated}"
    from harness.gates.scoring import score_path

    saved_store, n = score_path(tmp_path / "saved")
    assert n == N
    direct = evaluate_gates(default_gates(), saved_store)
    assert [(v.status, v.value, v.n) for v in direct] == [
        (v.status, v.value, v.n) for v in window.verdicts
    ]

    # production to regression test, with no manual export
    assert main(["incident", "list", "--state-dir", str(tmp_path / "state")]) == 0
    listed = capsys.readouterr().out
    assert all(cid in listed for cid in faulty)
    one = sorted(faulty)[0]
    rc = main(
        [
            "incident",
            "import",
            "--candidate",
            one,
            "--state-dir",
            str(tmp_path / "state"),
            "--out",
            str(tmp_path / "incidents"),
            "--audio-dir",
            str(tmp_path / "audio"),
        ]
    )
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert list((tmp_path / "incidents").rglob("*.yaml")), out.out


def test_call_conditions_table():
    from harness.evaluators.base import Score

    ok = [Score("tool_success", 1, "bool"), Score("unapproved_mutations", 0, "count")]
    assert call_failures(ok) == ()
    bad = [*ok, Score("unapproved_mutations", 2, "count", layer="background")]
    (why,) = call_failures(bad)
    assert "approval" in why and "background" in why
    assert call_failures(ok, "the conversational layer did not finish")[0].startswith(
        "incomplete trace"
    )


def test_a_synthetic_call_without_its_session_is_not_production(tmp_path):
    """A monitor killed mid-call leaves its call's spans to arrive at the next one's
    receiver: its room's name says it is synthetic, and it never enters production."""
    from dataclasses import replace

    inst = production_call(1, start=time.time() - 60)
    spans = [
        replace(s, attributes={**s.attributes, c.LK_ROOM_NAME: "harness-c-0123"})
        if s.name == "agent_session"
        else s
        for s in inst.spans
    ]
    with MonitorStore(tmp_path / "m.sqlite3") as store:
        ingest = ProductionIngest(store, tmp_path, grace_s=0.0, settle_s=0.0, clock=lambda: 1e9)
        assert ingest.feed(spans_to_proto(spans).SerializeToString()) == 200
        assert ingest.poll() == []
        assert store.count_calls() == 0 and ingest.stats.synthetic_skipped == 1
