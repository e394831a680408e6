"""The HTML report and the Perfetto export, from run directories built of saved artifacts
(the hand-built clinic call, a real WAV, ``timings.json`` and ``scores.jsonl`` as the engine
writes them). What the browser does with the page is tested in tests/e2e."""

from __future__ import annotations

import itertools
import json
import re
import wave
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.gates.scoring import score_instance, score_record
from harness.report import (
    build_run,
    default_out,
    report_at_end,
    report_link,
    write_perfetto,
    write_report,
)
from harness.report.incident import incident_view
from harness.report.names import anchor
from harness.report.perfetto import trace_events
from harness.report.timeline import span_order, timeline
from harness.scenario.model import load_scenario
from harness.trace import conventions as c
from harness.trace.otlp import load_instance, save_instance
from tests.fixtures.instances.build import clinic_10_turns

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOOP_FIXTURE = FIXTURES / "incidents" / "clinic_loop" / "expected.yaml"
PRODUCTION_EXPORT = FIXTURES / "otel_file_exporter.jsonl"


# --- building run directories from saved artifacts -----------------------------------------


def write_wav(path: Path, seconds: float, rate: int = 8000) -> None:
    """A stereo recording of ``seconds``: a quiet tone on the left, another on the right."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    left = (np.sin(2 * np.pi * 220 * t) * 800).astype(np.int16)
    right = (np.sin(2 * np.pi * 330 * t) * 800).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.stack([left, right], axis=1).tobytes())


def add_call(
    run: Path,
    name: str,
    *,
    verdict: str = "pass",
    failures: tuple[str, ...] = (),
    error: str | None = None,
    scenario: str | None = None,
    cid: str | None = None,
    mutate=None,
) -> Path:
    inst = clinic_10_turns(cid or f"conv-{name}")
    caller = dict(inst.caller)
    caller["scenario_id"] = scenario or name.split("@")[0].split(".")[0]
    if mutate is not None:
        caller = mutate(caller)
    inst = inst.with_caller(caller, "recording.wav")
    d = run / name
    save_instance(inst, d)
    write_wav(d / "recording.wav", caller["ended_at"] - caller["started_at"])
    timings = {
        "conversation_id": inst.conversation_id,
        "verdict": verdict,
        "duration_s": 74.2,
        "error": error,
        "failures": list(failures),
        "call": caller,
    }
    (d / "timings.json").write_text(json.dumps(timings))
    scores = score_instance(load_instance(d))
    with (run / "scores.jsonl").open("a") as f:
        for s in scores:
            record = score_record(s, conversation_id=inst.conversation_id, scenario=name)
            f.write(json.dumps(record) + "\n")
    return d


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "20261207-000000-abcd"
    add_call(run, "booking")
    add_call(
        run,
        "booking.2",
        verdict="fail",
        failures=(
            "turn 3: agent reply 'Monday has openings' does not contain 'tuesday'",
            "turn 2: tool 'check_availability' was called with {'day': 'monday'}, "
            "expected {'day': 'tuesday'}",
            "after-call: step 'write_outbox' ended error: outbox full",
        ),
    )
    return run


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str):
        out = []
        for t, a in self.tags:
            if tag is not None and t != tag:
                continue
            if cls is not None and cls not in a.get("class", "").split():
                continue
            if any(a.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            out.append(a)
        return out

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if "id" in a}


def parse(path: Path) -> Elements:
    p = Elements()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def section_of(html: str, call: str) -> str:
    start = html.index(f'id="{anchor(call)}"')
    end = html.find("<section", start)
    return html[start : end if end > 0 else len(html)]


# --- the page -----------------------------------------------------------------------------


def test_waterfall_has_one_bar_per_span_of_every_layer(run_dir: Path):
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    html = out.read_text()
    inst = load_instance(run_dir / "booking")
    section = section_of(html, "booking")
    ids = re.findall(
        r'class="wf-bar [^"]*" style="[^"]*" title="[^"]*" data-span-id="([0-9a-f]+)"', section
    )
    assert sorted(ids) == sorted(s.span_id for s in inst.spans)
    for layer in (c.LAYER_CONVERSATIONAL, c.LAYER_BACKGROUND, c.LAYER_WORKFLOW):
        assert section.count(f'class="wf-bar layer-{layer}') == len(inst.layers[layer])


def test_spans_of_other_layers_sit_under_the_span_that_caused_them():
    inst = clinic_10_turns()
    order = span_order(inst)
    assert len(order) == len(inst.spans) and len({s.key for s, _, _ in order}) == len(inst.spans)
    position = {s.key: k for k, (s, _, _) in enumerate(order)}
    for s, depth, _ in order:
        parent = inst.parent(s)
        if parent is not None:
            assert position[parent.key] < position[s.key]
            assert depth == next(d for x, d, _ in order if x.key == parent.key) + 1
    (workflow_root,) = inst.workflow_roots
    _, _, via = next(item for item in order if item[0].key == workflow_root.key)
    linked = inst.span(workflow_root.links[0].span_id, workflow_root.links[0].trace_id)
    assert via == linked and position[linked.key] < position[workflow_root.key]


def test_transcript_turns_are_aligned_with_the_recording(run_dir: Path):
    page = parse(write_report(run_dir))
    caller = load_instance(run_dir / "booking").caller
    (audio,) = [a for a in page.find("audio") if a["src"] == "booking/recording.wav"]
    assert "controls" in audio
    turns = [a for a in page.find("li", cls="turn") if a["id"].startswith("call-booking-turn")]
    assert [int(a["data-turn"]) for a in turns] == list(range(11))
    for a, t in zip(turns[1:], caller["turns"][1:], strict=True):
        assert float(a["data-t0"]) == pytest.approx(
            t["caller_start"] - caller["started_at"], abs=1e-3
        )
        assert float(a["data-t0"]) < float(a["data-t1"])
    # consecutive: a turn ends where the next starts, the last at the hang-up
    bounds = [(float(a["data-t0"]), float(a["data-t1"])) for a in turns]
    assert all(b[1] == pytest.approx(n[0]) for b, n in itertools.pairwise(bounds))
    assert bounds[-1][1] == pytest.approx(caller["ended_at"] - caller["started_at"])
    seek = page.find("button", cls="seek", data_t0=turns[3]["data-t0"])
    assert seek, "turn 3 has a button that seeks to it"


def test_failed_call_comes_first_with_its_evidence_linked(run_dir: Path):
    out = write_report(run_dir)
    page = parse(out)
    html = out.read_text()
    rows = re.findall(r'<tr class="row-(\w+)"><td>booking</td><td><a href="#([^"]+)"', html)
    assert rows == [("fail", "call-booking.2"), ("pass", "call-booking")]
    section = section_of(html, "booking.2")
    assert "Why it failed" in section
    links = re.findall(r'href="#(call-booking\.2-(?:turn|span)-[^"]+)"', section)
    assert "call-booking.2-turn-3" in links and "call-booking.2-turn-2" in links
    inst = load_instance(run_dir / "booking.2")
    tool = next(
        s
        for s in inst.spans
        if s.name == c.SPAN_FUNCTION_TOOL
        and s.attributes.get(c.LK_FUNCTION_TOOL_NAME) == "check_availability"
    )
    assert f"call-booking.2-span-{tool.span_id}" in links, "the tool expectation names its span"
    step = next(s for s in inst.spans if s.name == "write_outbox")
    assert f"call-booking.2-span-{step.span_id}" in links
    assert set(links) <= page.ids, "every evidence link lands on an element of the page"


def test_gate_table_draws_each_gates_distribution(run_dir: Path):
    run = build_run(run_dir)
    html = write_report(run_dir).read_text()
    gates = html[html.index('id="gates"') : html.index('id="call-')]
    assert len(run.verdicts) >= 5
    for v in run.verdicts:
        assert f'<th scope="row">{v.gate.name}</th>' in gates
        n = run.store.select(v.gate.metric, v.gate.span, v.gate.layer).count
        assert v.n == n
    # a percentile gate with samples: its ECDF, the statistic's dot and both thresholds
    e2e = gates[gates.index('<th scope="row">e2e_latency_p90</th>') :]
    e2e = e2e[: e2e.index("</tr>")]
    assert 'class="ecdf"' in e2e and 'class="stat"' in e2e
    assert 'class="thr warn"' in e2e and 'class="thr fail"' in e2e
    assert "n=20" in e2e  # two calls of ten turns


def test_latency_bars_mark_turns_over_the_gate(tmp_path: Path):
    run = tmp_path / "run"

    def slow(caller):
        caller = json.loads(json.dumps(caller))
        caller["turns"][4]["response_latency_ms"] = 4200.0
        return caller

    add_call(run, "slow", mutate=slow)
    from harness.gates import parse_gates

    gates = parse_gates(
        {
            "gates": [
                {
                    "name": "reply",
                    "metric": "response_latency",
                    "statistic": "p90",
                    "warn": 2000,
                    "fail": 3000,
                }
            ]
        }
    )
    html = write_report(run, gates=gates).read_text()
    table = html[html.index('class="latency"') :]
    table = table[: table.index("</table>")]
    rows = re.findall(r'<tr><th scope="row">(turn \d+|greeting)</th>(.*?)</tr>', table)
    over = [name for name, row in rows if "over fail" in row]
    assert over == ["turn 4"]
    assert "p90 warn 2000 / fail 3000 ms" in table


def test_report_needs_no_network_and_stays_small(run_dir: Path):
    html = write_report(run_dir).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<script[^>]+src=|<link[^>]+stylesheet|@import|url\(\s*['\"]?http", html)
    # one 10-turn call: far under 2 MB without its audio (the audio is linked, not embedded)
    one = write_report(run_dir / "booking").read_bytes()
    assert len(one) < 2 * 1024 * 1024
    assert b"data:audio" not in one and b"recording.wav" in one


def test_text_from_the_call_is_escaped(tmp_path: Path):
    def hostile(caller):
        caller = json.loads(json.dumps(caller))
        caller["turns"][2]["spoken_text"] = "</script><script>alert(1)</script><b>x</b>"
        return caller

    run = tmp_path / "run"
    add_call(run, "booking", mutate=hostile)
    html = write_report(run).read_text()
    assert "<script>alert(1)" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # ours


def test_call_directory_and_trace_export_get_their_own_report(run_dir: Path, tmp_path: Path):
    out = write_report(run_dir / "booking")
    assert out == run_dir / "booking" / "report.html"
    assert 'src="recording.wav"' in out.read_text()
    export = tmp_path / "export.jsonl"
    export.write_bytes(PRODUCTION_EXPORT.read_bytes())
    out = write_report(export)
    assert out == tmp_path / "export.report.html" == default_out(export)
    page = parse(out)
    assert page.find("section", cls="call"), "each conversation of the export is a call"
    assert not page.find("audio") and "No recording for this call." in out.read_text()


def test_sweep_calls_make_a_sweep_table_and_plot(tmp_path: Path):
    run = tmp_path / "run"
    for name in ("booking@clean", "booking@clean.2", "booking@bad_cell"):
        add_call(run, name, scenario="booking")
    run_view = build_run(run)
    assert [(r.condition, r.calls) for r in run_view.sweep] == [("bad_cell", 1), ("clean", 2)]
    html = write_report(run).read_text()
    sweep = html[html.index('id="sweep"') :]
    assert '<th scope="row">clean</th><td class="num">2</td>' in sweep
    assert 'class="bar-task"' in sweep


def test_incident_replay_shows_the_original_call_beside_it(tmp_path: Path):
    scenario = load_scenario(LOOP_FIXTURE)
    view = incident_view(scenario)
    assert view is not None and view.id == "INC-20251113-099336"
    assert view.failed_evaluators == ("task_completion", "intent", "loops")
    assert view.greeting.startswith("Hello, thank you for calling Bright Smile Dental")
    replies = {t.index: t.agent_said for t in view.turns}
    assert replies[1] == "Of course. Which day would suit you?"
    assert replies[7] == "I'm sorry, I didn't catch that. Goodbye."
    assert [t.caller_said for t in view.turns][:2] == [
        "hi i'd like to book a cleaning",
        "next tuesday please",
    ]
    assert "barged in 1430 ms" in view.turns[5].timing

    run = tmp_path / "run"
    add_call(run, scenario.id, verdict="fail", failures=("the agent repeated itself: turn 5",))
    html = write_report(run, scenarios=[scenario]).read_text()
    box = section_of(html, scenario.id)
    assert f"Incident {scenario.id}: the original call beside this replay" in box
    assert "Of course. Which day would suit you?" in box  # the original reply
    assert "SEV-2, failing layer llm_dialog" in box
    # the replay's own answers stand in the same table
    replay = load_instance(run / scenario.id)
    assert replay.turns[1].agent_said in box


def test_junit_link_points_at_the_calls_section(run_dir: Path):
    link = report_link(run_dir / "booking.2")
    assert link == f"{run_dir / 'report.html'}#call-booking.2"
    write_report(run_dir)
    path, frag = link.split("#")
    assert frag in parse(Path(path)).ids


def test_report_at_end_never_raises(tmp_path: Path):
    line = report_at_end(tmp_path / "missing")
    assert line.startswith("report not written: ScenarioError")
    run = tmp_path / "run"
    add_call(run, "booking")
    assert report_at_end(run) == f"report: {run / 'report.html'}"


def test_a_monitor_cycle_reports_only_its_calls(run_dir: Path):
    out = write_report(run_dir, calls=[run_dir / "booking.2"])
    html = out.read_text()
    assert 'id="call-booking.2"' in html and 'id="call-booking"' not in html


def test_unreadable_call_is_a_note_not_a_silent_gap(run_dir: Path):
    (run_dir / "broken").mkdir()
    (run_dir / "broken" / "trace.jsonl").write_text("{not json\n")
    html = write_report(run_dir).read_text()
    assert "call broken left out:" in html
    assert 'id="call-booking"' in html


def test_a_call_without_a_trace_still_shows_its_turns(tmp_path: Path):
    run = tmp_path / "run"
    d = add_call(run, "booking", verdict="error", error="agent never joined the room")
    (d / "trace.jsonl").unlink()
    caller = json.loads((d / "caller.json").read_text())["caller"]
    (d / "caller.json").write_text(json.dumps(caller))  # what the engine saves then
    html = write_report(run).read_text()
    section = section_of(html, "booking")
    assert "! ERROR" in section and "agent never joined the room" in section
    assert section.count('class="turn"') == len(caller["turns"])
    assert "wf-bar" not in section.replace("swatch wf-bar", "")


def test_cli_report_writes_html_and_perfetto(run_dir: Path, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {run_dir / 'report.html'}"
    assert main(["report", str(run_dir / "booking"), "--format", "perfetto"]) == 0
    out = run_dir / "booking" / "perfetto.json"
    assert capsys.readouterr().out.strip() == f"report: {out}"
    assert json.loads(out.read_text())["traceEvents"]
    assert main(["report", str(run_dir / "nowhere")]) == 2


def test_timeline_puts_spans_and_turns_on_the_recordings_clock():
    inst = clinic_10_turns()
    tl = timeline(inst)
    started = inst.caller["started_at"]
    assert tl.origin == started
    first = min(s.start_ns for s in inst.spans) / 1e9 - started
    assert tl.lo == pytest.approx(min(0.0, first))
    assert tl.hi >= max(s.end_ns for s in inst.spans) / 1e9 - started - 1e-6
    assert 0 <= tl.pct(0.0) <= tl.pct(tl.hi) == 100.0
    ticks = tl.ticks()
    assert ticks == sorted(ticks) and 4 <= len(ticks) <= 12


# --- Perfetto / Chrome trace events ---------------------------------------------------------

# The Trace Event Format's JSON object form, as far as this export uses it (complete events,
# metadata events, flow bindings), from the format's published description.
TRACE_EVENT_SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object"},
        "traceEvents": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["ph", "name", "pid", "tid"],
                "properties": {
                    "name": {"type": "string"},
                    "cat": {"type": "string"},
                    "ph": {"enum": ["X", "M"]},
                    "pid": {"type": "integer", "minimum": 0},
                    "tid": {"type": "integer", "minimum": 0},
                    "ts": {"type": "number"},
                    "dur": {"type": "number", "minimum": 0},
                    "args": {"type": "object"},
                    "bind_id": {"type": "string"},
                    "flow_in": {"const": True},
                    "flow_out": {"const": True},
                },
                "allOf": [
                    {
                        "if": {"properties": {"ph": {"const": "X"}}},
                        "then": {"required": ["ts", "dur"]},
                    },
                    {
                        "if": {"properties": {"ph": {"const": "M"}}},
                        "then": {
                            "properties": {
                                "name": {
                                    "enum": [
                                        "process_name",
                                        "process_sort_index",
                                        "thread_name",
                                    ]
                                }
                            },
                            "required": ["args"],
                        },
                    },
                ],
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


def perfetto_doc(run_dir: Path, call: str = "booking") -> dict:
    out = write_perfetto(run_dir / call)
    assert out == run_dir / call / "perfetto.json"
    return json.loads(out.read_text())


def test_perfetto_export_is_valid_trace_event_json(run_dir: Path):
    import jsonschema

    doc = perfetto_doc(run_dir)
    jsonschema.validate(doc, TRACE_EVENT_SCHEMA)


def test_perfetto_export_has_one_process_per_layer_and_every_span(run_dir: Path):
    doc = perfetto_doc(run_dir)
    inst = load_instance(run_dir / "booking")
    events = doc["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert sorted(names.values()) == ["background", "caller", "conversational", "workflow"]
    spans = [e for e in events if e["ph"] == "X" and e["cat"] != "caller"]
    assert sorted(e["args"]["span_id"] for e in spans) == sorted(s.span_id for s in inst.spans)
    for e in spans:
        span = inst.span(e["args"]["span_id"])
        assert names[e["pid"]] == span.layer
        assert e["dur"] == pytest.approx(span.duration_ns / 1000, abs=0.01)
    caller = [e for e in events if e["ph"] == "X" and e["cat"] == "caller"]
    assert len([e for e in caller if e["tid"] == 1]) == 10  # ten caller turns


def test_perfetto_events_of_each_thread_nest(run_dir: Path):
    """Trace-event viewers stack a thread's complete events: each must lie inside the one
    open below it, or after it has ended."""
    events = perfetto_doc(run_dir)["traceEvents"]
    threads: dict[tuple[int, int], list[dict]] = {}
    for e in events:
        if e["ph"] == "X":
            threads.setdefault((e["pid"], e["tid"]), []).append(e)
    for evs in threads.values():
        stack: list[float] = []
        for e in sorted(evs, key=lambda e: (e["ts"], -e["dur"])):
            end = e["ts"] + e["dur"]
            while stack and stack[-1] <= e["ts"]:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-6, e["name"]
            stack.append(end)


def test_perfetto_flows_join_linked_and_caused_spans(run_dir: Path):
    events = perfetto_doc(run_dir)["traceEvents"]
    inst = load_instance(run_dir / "booking")
    by_bind: dict[str, dict[str, dict]] = {}
    for e in events:
        if "bind_id" in e:
            side = "out" if e.get("flow_out") else "in"
            assert side not in by_bind.setdefault(e["bind_id"], {})
            by_bind[e["bind_id"]][side] = e
    assert by_bind and all(set(v) == {"in", "out"} for v in by_bind.values())
    (root,) = inst.workflow_roots
    flow = next(v for v in by_bind.values() if v["in"]["args"]["span_id"] == root.span_id)
    assert flow["out"]["args"]["span_id"] == root.links[0].span_id


def test_perfetto_export_of_a_run_names_each_calls_layers(run_dir: Path):
    out = write_perfetto(run_dir)
    doc = json.loads(out.read_text())
    names = {e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    assert "booking · conversational" in names and "booking.2 · workflow" in names


def test_empty_run_is_a_clear_error(tmp_path: Path):
    from harness.core.errors import ScenarioError

    with pytest.raises(ScenarioError, match="no calls here"):
        write_report(tmp_path)
    assert trace_events([])["traceEvents"] == []


def test_data_errors_and_incomplete_traces_are_findings(tmp_path: Path):
    run = tmp_path / "run"
    d = add_call(run, "booking")
    inst = load_instance(d)
    keep = [s for s in inst.spans if s.name != "agent_session"]  # the root never came
    save_instance(
        replace(inst, spans=tuple(keep), complete=False, incomplete_reason="waited 20 s"), d
    )
    html = write_report(run).read_text()
    section = section_of(html, "booking")
    assert "trace partial: waited 20 s" in section


def test_a_sensitivity_run_shows_each_fault_and_links_the_call_that_caught_it(tmp_path: Path):
    """Only the calls that raised an alarm are drawn (a catalogue run places dozens), each
    linked from its fault's row; the gate table of all calls together, which would mix the
    faults, is not drawn; a missed fault says so in words."""
    run = tmp_path / "run"
    for fault in ("clean", "llm_slow", "tts_cut"):
        for name in ("booking", "booking.2"):
            add_call(run / fault, name, scenario="booking")

    def calls(fault: str) -> list[dict]:
        where = f"elsewhere/runs/{run.name}/{fault}"  # the run was moved since: still found
        return [{"artifacts": f"{where}/{n}", "verdict": "pass"} for n in ("booking", "booking.2")]

    gate = {"kind": "gate", "name": "e2e_latency_p90", "detail": "p90 = 3565 ms", "call": 2}
    doc = {
        "format": "harness.sensitivity/1",
        "catalogue": {"name": "clinic"},
        "score": {"caught": 1, "total": 2},
        "clean": {
            "name": "clean",
            "layer": None,
            "status": "clean",
            "alarms": [],
            "calls": calls("clean"),
        },
        "faults": [
            {
                "name": "llm_slow",
                "layer": "llm",
                "injected": "extra_llm_latency_ms=1300",
                "status": "caught",
                "caught_by": gate,
                "alarms": [gate],
                "calls_to_catch": 2,
                "calls": calls("llm_slow"),
            },
            {
                "name": "tts_cut",
                "layer": "tts",
                "injected": "tts_cut_fraction=0.55",
                "status": "missed",
                "caught_by": None,
                "alarms": [],
                "calls": calls("tts_cut"),
            },
        ],
    }
    (run / "sensitivity.json").write_text(json.dumps(doc))
    view = build_run(run)
    assert [c.name for c in view.calls] == ["llm_slow/booking.2"]
    assert view.verdicts == []
    html = write_report(run).read_text()
    section = html[
        html.index('id="sensitivity"') : html.index("</section>", html.index('id="sensitivity"'))
    ]
    assert "Score: 1/2 faults caught; the clean run raised 0 false alarms" in section
    assert "CAUGHT" in section and "MISSED" in section and "NO ALARM" in section
    assert f'href="#{anchor("llm_slow/booking.2")}"' in section
    assert f'id="{anchor("llm_slow/booking.2")}"' in html
