"""The report as one HTML page: the run (calls, gates with their distributions, a condition
sweep) and, per call, the waterfall of every layer, the recording with its transcript, the
latency of each turn against the gates, and the evidence of each failure.

Everything is rendered here, in Python: the page reads without JavaScript. The small
script (``assets/report.js``) adds the player's seeking, the transcript's highlighting and
the playhead; nothing is loaded from the network.
"""

from __future__ import annotations

import json
import os
import time
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.report.charts import gate_chart, load_chart, sweep_chart
from harness.report.html import Markup, el, join
from harness.report.model import CallView, RunView
from harness.report.timeline import Bar, Timeline, TurnRow, timeline
from harness.trace import conventions as c

__all__ = ["LATENCY_METRICS", "render_page"]

ASSETS = Path(__file__).parent / "assets"
LAYER_TAG = {
    c.LAYER_CONVERSATIONAL: "conv",
    c.LAYER_BACKGROUND: "bg",
    c.LAYER_WORKFLOW: "wf",
}
VERDICT_TEXT = {"pass": "✓ PASS", "fail": "✕ FAIL", "error": "! ERROR"}
GATE_TEXT = {"pass": "✓ PASS", "warn": "▲ WARN", "fail": "✕ FAIL", "insufficient": "? INSUFFICIENT"}
# (metric as the evaluators name it, column title, where the value is on a Turn)
LATENCY_METRICS = (
    ("response_latency", "response (caller)", "response_latency_ms"),
    ("e2e_latency", "lk.e2e_latency", "e2e_latency_ms"),
    ("llm_ttft", "LLM TTFT", "ttft_ms"),
    ("tts_ttfb", "TTS TTFB", "ttfb_ms"),
    ("end_of_turn_delay", "end of turn", "end_of_turn_delay_ms"),
)
MAX_INDENT = 14
MAX_VALUE = 2000


@cache
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _secs(t: float) -> str:
    return f"{t:.2f} s"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def _dur(ms: float) -> str:
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms" if ms >= 1 else f"{ms:.2f} ms"


def _value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _verdict(v: str) -> Markup:
    return el("span", VERDICT_TEXT.get(v, v.upper()), class_=f"verdict v-{v}")


# --- the run ----------------------------------------------------------------------------------


def _calls_table(run: RunView) -> Markup:
    from harness.session.summary import percentile

    rows = []
    for call in run.calls:
        lat = call.response_latencies
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
        inst = call.instance
        rows.append(
            el(
                "tr",
                el("td", call.scenario),
                el("td", el("a", call.name, href=f"#{call.anchor}")),
                el("td", str(call.spoken_turns), class_="num"),
                el("td", _ms(p50), class_="num"),
                el("td", _ms(p95), class_="num"),
                el(
                    "td",
                    f"{call.duration_s:.1f}" if call.duration_s is not None else "-",
                    class_="num",
                ),
                el("td", inst.trace_state, f" ({len(inst.spans)} spans)"),
                el("td", _verdict(call.verdict), " ", el("span", call.reason, class_="reason")),
                class_=f"row-{call.verdict}",
            )
        )
    head = el(
        "tr",
        *(
            el("th", h, scope="col")
            for h in ("scenario", "call", "turns", "p50", "p95", "secs", "trace", "verdict")
        ),
    )
    return el(
        "table",
        el("caption", "Calls, failures first (response latency measured by the caller)"),
        el("thead", head),
        el("tbody", rows),
        class_="calls",
    )


def _where(gate: Any) -> str:
    return " ".join(x for x in (gate.layer, gate.span) if x) or "all"


def _gate_status(v: Any) -> Markup:
    if v.data_errors:
        return el("span", "✕ DATA ERROR", class_="verdict v-fail")
    if v.no_trace:
        return el("span", "? NO TRACE", class_="verdict v-insufficient")
    return el("span", GATE_TEXT.get(v.status, v.status.upper()), class_=f"verdict v-{v.status}")


def _gates_table(run: RunView) -> Markup:
    from harness.gates.verdict import format_value

    if not run.verdicts:
        return el("p", "No gates were evaluated.")
    rows = []
    for v in run.verdicts:
        g = v.gate
        samples: list[float] = []
        if run.store is not None:
            samples = run.store.select(g.metric, g.span, g.layer).samples()
        sign = ">" if g.direction == "above" else "<"
        thresholds = ", ".join(
            f"{k} {sign}{format_value(t, v.unit)}"
            for k, t in (("warn", g.warn), ("fail", g.fail))
            if t is not None
        )
        ci = ""
        if v.ci is not None:
            ci = f" [{format_value(v.ci[0], v.unit)}, {format_value(v.ci[1], v.unit)}]"
        rows.append(
            el(
                "tr",
                el("th", g.name, scope="row"),
                el("td", _where(g)),
                el("td", f"{g.statistic} {format_value(v.value, v.unit)}", el("small", ci)),
                el("td", str(v.n), class_="num"),
                el("td", thresholds),
                el("td", _gate_status(v)),
                el("td", gate_chart(v, samples)),
                el("td", v.detail, class_="detail"),
                class_=f"row-{v.status}",
            )
        )
    head = el(
        "tr",
        *(
            el("th", h, scope="col")
            for h in (
                "gate",
                "layer/span",
                "value (95 % CI)",
                "n",
                "thresholds",
                "verdict",
                "distribution",
                "why",
            )
        ),
    )
    return el(
        "table",
        el(
            "caption",
            "Gates over all calls. Distribution: share of samples at or below each value; "
            "warn dashed, fail solid, the gate's statistic marked.",
        ),
        el("thead", head),
        el("tbody", rows),
        class_="gates",
    )


def _sweep(run: RunView) -> Markup:
    if not run.sweep:
        return Markup("")

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{v * 100:.1f} %"

    rows = [
        el(
            "tr",
            el("th", r.condition, scope="row"),
            el("td", str(r.calls), class_="num"),
            el("td", str(r.passed), class_="num"),
            el("td", pct(r.wer), class_="num"),
            el("td", pct(r.task_completion), class_="num"),
            el("td", _ms(r.p50_ms), class_="num"),
        )
        for r in run.sweep
    ]
    head = el(
        "tr",
        *(
            el("th", h, scope="col")
            for h in ("condition", "calls", "passed", "agent WER", "task completion", "p50")
        ),
    )
    return el(
        "section",
        el("h2", "Condition sweep"),
        el(
            "table",
            el("caption", "One scenario under each audio condition"),
            el("thead", head),
            el("tbody", rows),
            class_="sweep",
        ),
        sweep_chart(run.sweep),
        id="sweep",
    )


def _load(run: RunView) -> Markup:
    """A load test: per concurrency level its calls, latency, gates and what the harness
    cost, the knee, and the chart."""
    doc = run.load
    if not doc:
        return Markup("")
    steps = [s for s in doc.get("steps") or [] if isinstance(s, dict)]
    knee = doc.get("knee") if isinstance(doc.get("knee"), dict) else None
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    factor = config.get("knee_factor", 2.0)
    factor = float(factor) if isinstance(factor, (int, float)) else 2.0

    def num(v: Any, fmt: str, scale: float = 1.0) -> str:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        return fmt.format(v * scale) if ok else "-"

    first = (steps[0].get("latency") or {}).get("p90_ms") if steps else None
    limit = factor * first if isinstance(first, (int, float)) and first > 0 else None
    rows = []
    for s in steps:
        lat = s.get("latency") or {}
        cost = s.get("harness") or {}
        p90 = lat.get("p90_ms")
        grew = limit is not None and isinstance(p90, (int, float)) and p90 > limit
        failed = [
            g.get("name", "")
            for g in s.get("gates") or []
            if g.get("status") in ("fail", "data_error")
        ]
        limited = s.get("harness_limited") or []
        is_knee = knee is not None and knee.get("concurrency") == s.get("concurrency")
        breaks = bool(failed) or grew or bool(s.get("errors"))
        verdict = "KNEE" if is_knee else ("breaks" if breaks else "holds")
        status = "fail" if is_knee or breaks else "pass"
        rows.append(
            el(
                "tr",
                el("th", str(s.get("concurrency")), scope="row"),
                el("td", str(s.get("calls", 0)), class_="num"),
                el(
                    "td",
                    f"{s.get('passed', 0)} / {s.get('failed', 0)} / {s.get('errors', 0)}",
                    class_="num",
                ),
                el("td", _ms(lat.get("p50_ms")), class_="num"),
                el("td", _ms(lat.get("p90_ms")), class_="num"),
                el("td", _ms(lat.get("p99_ms")), class_="num"),
                el("td", ", ".join(failed) or "-"),
                el("td", num(cost.get("cpu_per_call_minute"), "{:.2f}"), class_="num"),
                el("td", num(cost.get("loop_lag_p99_ms"), "{:.0f} ms"), class_="num"),
                el("td", num(cost.get("underrun_ms"), "{:.0f} ms"), class_="num"),
                el("td", num(cost.get("host_pressure"), "{:.0f} %", 100), class_="num"),
                el(
                    "td",
                    el("span", verdict, class_=f"verdict v-{status}"),
                    el("div", "harness-limited: " + "; ".join(limited), class_="reason")
                    if limited
                    else None,
                    *[
                        el("div", "timing: " + str(t), class_="reason")
                        for t in s.get("timing") or []
                    ],
                ),
                class_=f"row-{status}",
            )
        )
    head = el(
        "tr",
        *(
            el("th", h, scope="col")
            for h in (
                "concurrent calls",
                "calls",
                "pass / fail / error",
                "p50",
                "p90",
                "p99",
                "gates failed",
                "caller CPU s per call-minute",
                "loop lag p99",
                "underruns",
                "host CPU pressure",
                "step",
            )
        ),
    )
    cost = doc.get("cost") if isinstance(doc.get("cost"), dict) else {}
    per_min = cost.get("cpu_per_call_minute")
    cost_text = (
        f"The caller side spent {per_min:.2f} CPU seconds per call-minute "
        f"({60 / per_min:.0f} real-time calls per core)."
        if isinstance(per_min, (int, float)) and per_min > 0
        else ""
    )
    return el(
        "section",
        el("h2", "Load test"),
        el("p", str(doc.get("knee_line") or ""), class_="knee"),
        el(
            "table",
            el(
                "caption",
                "Per concurrency level: response latency measured by the caller, gates over "
                "the step's calls, and what the harness itself cost (a step where the rig was "
                "the bottleneck is marked harness-limited)",
            ),
            el("thead", head),
            el("tbody", rows),
            class_="load",
        ),
        load_chart(steps, knee, factor),
        el("p", cost_text, class_="meta") if cost_text else None,
        id="load",
    )


# --- one call ---------------------------------------------------------------------------------


_SENSITIVITY_RESULT = {
    "caught": ("CAUGHT", "pass"),
    "missed": ("MISSED", "fail"),
    "error": ("ERROR", "fail"),
    "clean": ("NO ALARM", "pass"),
    "false_alarm": ("FALSE ALARM", "fail"),
}


def _sensitivity(run: RunView) -> Markup:
    """A sensitivity run: per fault whether the suite caught it, by what and after how many
    calls, the clean run's false alarms, and the score; each catch links to its call."""
    doc = run.sensitivity
    if not doc:
        return Markup("")
    by_name = {c.name: c for c in run.calls}  # <fault>/<scenario>, as the report names them
    runs = [r for r in [doc.get("clean"), *(doc.get("faults") or [])] if isinstance(r, dict)]
    rows = []
    for r in runs:
        label, status = _SENSITIVITY_RESULT.get(str(r.get("status")), ("?", "fail"))
        alarm = r.get("caught_by") if isinstance(r.get("caught_by"), dict) else None
        alarms = [a for a in r.get("alarms") or [] if isinstance(a, dict)]
        shown = [alarm] if alarm else alarms if r.get("layer") is None else []
        evidence = []
        calls = [c for c in r.get("calls") or [] if isinstance(c, dict)]
        for a in shown:
            text = f"{a.get('kind')} {a.get('name')}: {a.get('detail')}"
            k = a.get("call")
            call = calls[k - 1] if isinstance(k, int) and 0 < k <= len(calls) else None
            where = Path(str(call.get("artifacts"))) if call else None
            view = by_name.get(f"{where.parent.name}/{where.name}") if where else None
            link = el("a", f"call {k}", href=f"#{view.anchor}") if view is not None else None
            more = (" (", link, ")") if link is not None else ()
            evidence.append(el("div", text, *more, class_="reason"))
        rows.append(
            el(
                "tr",
                el("th", str(r.get("name") or "clean"), scope="row"),
                el("td", str(r.get("layer") or "-")),
                el(
                    "td",
                    str(r.get("injected") or "-"),
                    el("div", str(r.get("description") or ""), class_="reason"),
                ),
                el("td", el("span", label, class_=f"verdict v-{status}"), *evidence),
                el("td", str(r.get("calls_to_catch") or len(calls)), class_="num"),
                class_=f"row-{status}",
            )
        )
    score = doc.get("score") if isinstance(doc.get("score"), dict) else {}
    clean = doc.get("clean") if isinstance(doc.get("clean"), dict) else {}
    false_alarms = len(clean.get("alarms") or [])
    wall = doc.get("wall_time_s")
    summary = (
        f"Score: {score.get('caught', 0)}/{score.get('total', 0)} faults caught; the clean "
        f"run raised {false_alarms} false alarm{'s' if false_alarms != 1 else ''}"
        + (f"; {wall / 60:.1f} min" if isinstance(wall, (int, float)) else "")
        + "."
    )
    head = el(
        "tr",
        *(el("th", h, scope="col") for h in ("fault", "layer", "injected", "result", "calls")),
    )
    return el(
        "section",
        el("h2", "Sensitivity"),
        el("p", summary, class_="knee"),
        el(
            "table",
            el(
                "caption",
                "The suite once clean and once per fault of the catalogue "
                f"({(doc.get('catalogue') or {}).get('name', '')}): caught by which gate or "
                "expectation, after how many calls",
            ),
            el("thead", head),
            el("tbody", rows),
            class_="sensitivity",
        ),
        id="sensitivity",
    )


def _rel(path: Path, base: Path) -> str:
    rel = os.path.relpath(path, base)
    return "/".join(quote(part) for part in Path(rel).parts)


def _player(call: CallView, tl: Timeline, base: Path) -> Markup:
    rec = call.instance.recording_path
    if rec is None:
        return el("p", "No recording for this call.", class_="note")
    if not rec.is_file():
        return el("p", f"The recording is not at {rec} any more.", class_="note")
    return el(
        "div",
        el(
            "audio",
            "Your browser cannot play the recording: ",
            el("a", "download it", href=_rel(rec, base)),
            ".",
            controls=True,
            preload="metadata",
            src=_rel(rec, base),
            class_="rec",
            aria_label=f"Recording of {call.name}: caller on the left channel, agent on the right",
        ),
        el(
            "p",
            f"Stereo, {_secs(tl.recording_s or 0)}: left the caller as sent, right the agent as "
            "received. Choose a turn to play from it.",
            class_="note",
        ),
        class_="player",
    )


def _turn_id(call: CallView, index: int) -> str:
    return f"{call.anchor}-turn-{index}"


def _span_id(call: CallView, span_id: str) -> str:
    return f"{call.anchor}-span-{span_id}"


def _turn_label(t: TurnRow) -> str:
    return "greeting" if t.kind == "greeting" else f"turn {t.index}"


def _transcript(call: CallView, tl: Timeline, playable: bool) -> Markup:
    items = []
    for t in tl.turns:
        flags = []
        turn = t.turn
        if turn.interrupted:
            flags.append("agent interrupted")
        records = (call.caller or {}).get("turns", [])
        for rec in records if isinstance(records, list) else []:
            if not isinstance(rec, dict) or rec.get("index") != t.index:
                continue
            barge = rec.get("barge_in_ms")
            if isinstance(barge, (int, float)) and not isinstance(barge, bool) and barge:
                flags.append(f"caller barged in {barge:.0f} ms into the agent's reply")
        lines = []
        if t.kind == "silence":
            lines.append(el("p", el("b", "caller: "), el("i", "(silent)")))
        elif t.kind != "greeting":
            lines.append(el("p", el("b", "caller said: "), t.caller_said or "-"))
            lines.append(el("p", el("b", "agent heard: "), t.agent_heard or "-", class_="heard"))
        lines.append(el("p", el("b", "agent said: "), t.agent_said or el("i", "(nothing)")))
        label = f"▶ {_turn_label(t)} · {_secs(t.start_s)}"
        head = (
            el(
                "button",
                label,
                type="button",
                class_="seek",
                data_t0=f"{t.start_s:.3f}",
                aria_label=f"Play {_turn_label(t)} from {_secs(t.start_s)}",
            )
            if playable
            else el("span", label[2:], class_="turn-name")
        )
        items.append(
            el(
                "li",
                head,
                el("span", " · ".join(flags), class_="flags") if flags else None,
                el("div", lines, class_="lines"),
                class_="turn",
                id=_turn_id(call, t.index),
                data_turn=t.index,
                data_t0=f"{t.start_s:.3f}",
                data_t1=f"{t.end_s:.3f}",
            )
        )
    return el("ol", items, class_="transcript", aria_label="Transcript")


def _pos(tl: Timeline, a: float, b: float) -> str:
    left = tl.pct(a)
    width = max(tl.pct(b) - left, 0.0)
    return f"left:{left:.3f}%;width:{width:.3f}%"


def _axis(tl: Timeline) -> Markup:
    ticks = []
    for t in tl.ticks():
        x = tl.pct(t)
        edge = " end" if x > 96 else " start" if x < 2 else ""
        ticks.append(el("span", f"{t:g} s", class_="tick" + edge, style=f"left:{x:.3f}%"))
    return el(
        "div",
        el("div", "seconds from the caller joining", class_="wf-label"),
        el("div", ticks, class_="wf-track wf-ticks", aria_hidden="true"),
        class_="wf-row wf-axis",
    )


def _turn_row(call: CallView, tl: Timeline, t: TurnRow, playable: bool) -> Markup:
    segs = []
    if t.caller is not None:
        segs.append(
            el(
                "span",
                class_="seg caller",
                style=_pos(tl, *t.caller),
                title=f"caller speaking {_secs(t.caller[0])} – {_secs(t.caller[1])}",
            )
        )
    if t.agent is not None:
        segs.append(
            el(
                "span",
                class_="seg agent-audio",
                style=_pos(tl, *t.agent),
                title=f"agent audio heard {_secs(t.agent[0])} – {_secs(t.agent[1])}",
            )
        )
    name = _turn_label(t)
    label = (
        el("button", f"▶ {name}", type="button", class_="seek", data_t0=f"{t.start_s:.3f}")
        if playable
        else el("span", name)
    )
    lat = t.turn.response_latency_ms
    return el(
        "div",
        el("div", label, el("small", f" {_ms(lat)}" if lat is not None else ""), class_="wf-label"),
        el("div", segs, class_="wf-track"),
        class_="wf-row wf-turn",
        data_turn=t.index,
        data_t0=f"{t.start_s:.3f}",
        data_t1=f"{t.end_s:.3f}",
    )


def _attr_rows(attrs: dict[str, Any]) -> Markup:
    return join(el("tr", el("th", k, scope="row"), el("td", _value(v))) for k, v in attrs.items())


def _span_row(call: CallView, tl: Timeline, bar: Bar, playable: bool) -> Markup:
    from harness.report.tree import QUIET_SPANS, key_attributes

    s = bar.span
    layer = s.layer or "unknown"
    tag = LAYER_TAG.get(layer, layer)
    keys = key_attributes(s)
    hover = f"{s.name} ({layer}, {s.service_name or '?'}) {_dur(s.duration_ms)}" + (
        "\n" + "\n".join(keys) if keys else ""
    )
    err = s.is_error
    via = ""
    if bar.linked_from is not None:
        via = f"↪ linked from {bar.linked_from.name}"
    elif bar.cross_parent is not None:
        via = f"↳ called by {bar.cross_parent.layer} {bar.cross_parent.name}"
    label = el(
        "span",
        "✕ " if err else "",
        el("span", "↪ ", title=via) if bar.linked_from is not None else None,
        s.name,
        " ",
        el("span", tag, class_="tag"),
        " ",
        el("small", _dur(s.duration_ms)),
        el("small", " error", class_="errtext") if err else None,
        class_="wf-label",
        style=f"padding-left:{min(bar.depth, MAX_INDENT) * 0.7 + 0.3:.1f}em",
    )
    track: list[Any] = []
    if bar.linked_from is not None:
        src = bar.linked_from
        a = src.end_ns / 1e9 - tl.origin
        track.append(
            el(
                "span",
                class_="wf-link",
                style=_pos(tl, min(a, bar.start_s), max(a, bar.start_s)),
                title=f"span link: {s.name} links to {src.name} of the call",
            )
        )
    track.append(
        el(
            "span",
            class_=f"wf-bar layer-{layer}" + (" err" if err else ""),
            style=_pos(tl, bar.start_s, bar.end_s),
            title=hover,
            data_span_id=s.span_id,
        )
    )
    info = [
        ("layer", layer),
        ("service", s.service_name or "?"),
        ("start", f"{_secs(bar.start_s)} (from the caller joining)"),
        ("duration", _dur(s.duration_ms)),
        ("status", s.status + (f": {s.status_message}" if s.status_message else "")),
        ("span id", s.span_id),
        ("trace id", s.trace_id),
    ]
    if bar.cross_parent is not None:
        p = bar.cross_parent
        info.append(("caused by", f"{p.layer or 'unknown'} span {p.name} ({p.span_id})"))
    elif s.parent_span_id:
        info.append(("parent", s.parent_span_id))
    if bar.linked_from is not None:
        info.append(("linked to", f"{bar.linked_from.name} ({bar.linked_from.span_id})"))
    detail = [
        el("p", "  ".join(keys), class_="keys") if keys else None,
        el("dl", [join(el("dt", k), el("dd", v)) for k, v in info]),
    ]
    if playable and bar.start_s >= 0 and tl.recording_s and bar.start_s <= tl.recording_s:
        detail.append(
            el(
                "button",
                f"▶ play from {_secs(bar.start_s)}",
                type="button",
                class_="seek",
                data_t0=f"{bar.start_s:.3f}",
            )
        )
    if s.attributes:
        detail.append(el("table", el("tbody", _attr_rows(s.attributes)), class_="attrs"))
    if s.events:
        detail.append(
            el(
                "ul",
                [
                    el(
                        "li",
                        f"{_secs(e.time_ns / 1e9 - tl.origin)}: {e.name}",
                        " ",
                        _value(e.attributes) if e.attributes else "",
                    )
                    for e in s.events
                ],
                class_="events",
            )
        )
    quiet = s.name in QUIET_SPANS and not err
    return el(
        "details",
        el("summary", label, el("span", track, class_="wf-track")),
        el("div", el("small", via, class_="via") if via else None, detail, class_="wf-detail"),
        class_=f"wf-row wf-span layer-{layer}"
        + (" err" if err else "")
        + (" quiet" if quiet else ""),
        id=_span_id(call, s.span_id),
    )


def _legend() -> Markup:
    items = [
        ("seg caller", "caller speaking"),
        ("seg agent-audio", "agent audio as the caller heard it"),
        ("wf-bar layer-conversational", "conversational agent (conv)"),
        ("wf-bar layer-background", "background agent (bg)"),
        ("wf-bar layer-workflow", "after-call workflow (wf)"),
        ("wf-bar err", "✕ error"),
        ("wf-link", "span link"),
    ]
    return el(
        "ul",
        [el("li", el("span", class_=f"swatch {cls}"), " ", text) for cls, text in items],
        class_="legend",
    )


def _waterfall(call: CallView, tl: Timeline, playable: bool) -> Markup:
    rows: list[Any] = [_axis(tl)]
    if tl.turns:
        rows.append(el("div", el("div", "caller", class_="wf-label"), class_="wf-row wf-group"))
        rows.extend(_turn_row(call, tl, t, playable) for t in tl.turns)
    rows.append(
        el("div", el("div", f"spans ({len(tl.bars)})", class_="wf-label"), class_="wf-row wf-group")
    )
    rows.extend(_span_row(call, tl, b, playable) for b in tl.bars)
    from harness.report.tree import QUIET_SPANS

    quiet = sum(1 for b in tl.bars if b.span.name in QUIET_SPANS and not b.span.is_error)
    toggle = (
        el(
            "label",
            el("input", type="checkbox", class_="show-quiet", checked=True),
            f" show livekit-agents internals ({quiet} spans: llm_request, tts_request, ...)",
            class_="quiet-toggle",
        )
        if quiet
        else None
    )
    return join(
        _legend(),
        toggle,
        el(
            "div",
            rows,
            el("div", class_="wf-playhead", aria_hidden="true", hidden=True),
            class_="wf",
            role="group",
            aria_label=f"Waterfall of {call.name}: {len(tl.bars)} spans on one time axis",
            data_lo=f"{tl.lo:.3f}",
            data_hi=f"{tl.hi:.3f}",
        ),
    )


def _gate_thresholds(gates: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for g in gates or ():
        if g.statistic == "rate" or (g.warn is None and g.fail is None):
            continue
        out.setdefault(g.metric, []).append(g)
    return out


def _latency(call: CallView, tl: Timeline, gates: Any) -> Markup:
    by_metric = _gate_thresholds(gates)
    turns = [t for t in tl.turns if t.kind != "silence"]
    columns = [
        (m, title, attr)
        for m, title, attr in LATENCY_METRICS
        if any(getattr(t.turn, attr) is not None for t in turns)
    ]
    if not columns:
        return el("p", "No latency was measured on this call.", class_="note")
    head = [el("th", "turn", scope="col")]
    scale: dict[str, float] = {}
    for m, title, attr in columns:
        gs = by_metric.get(m, [])
        values = [getattr(t.turn, attr) for t in turns if getattr(t.turn, attr) is not None]
        marks = [x for g in gs[:1] for x in (g.warn, g.fail) if x is not None]
        scale[m] = max([*values, *marks, 1.0]) * 1.08
        gate_text = "no gate"
        if gs:
            g = gs[0]
            limits = " / ".join(
                f"{k} {x:g}" for k, x in (("warn", g.warn), ("fail", g.fail)) if x is not None
            )
            gate_text = f"{g.statistic} {limits} ms"
        head.append(
            el(
                "th",
                title,
                el("br"),
                el("small", gate_text, title=gs[0].name if gs else None),
                scope="col",
            )
        )
    rows = []
    for t in turns:
        cells = [el("th", _turn_label(t), scope="row")]
        for m, _title, attr in columns:
            v = getattr(t.turn, attr)
            if v is None:
                cells.append(el("td", "-", class_="lat"))
                continue
            top = scale[m]
            g = (by_metric.get(m) or [None])[0]
            ticks = []
            state = ""
            if g is not None:
                for k, x in (("warn", g.warn), ("fail", g.fail)):
                    if x is None:
                        continue
                    ticks.append(
                        el(
                            "span",
                            class_=f"lat-thr {k}",
                            style=f"left:{min(x / top, 1) * 100:.2f}%",
                            title=f"{k} {x:g} ms",
                        )
                    )
                if g.fail is not None and g.crossed(v, g.fail):
                    state = "over fail"
                elif g.warn is not None and g.crossed(v, g.warn):
                    state = "over warn"
            cells.append(
                el(
                    "td",
                    el(
                        "span",
                        el(
                            "span",
                            class_="lat-fill" + (" over" if state else ""),
                            style=f"width:{max(min(v / top, 1), 0) * 100:.2f}%",
                        ),
                        ticks,
                        class_="lat-bar",
                        aria_hidden="true",
                    ),
                    el("span", _ms(v), class_="lat-val"),
                    el("b", f" ▲ {state}", class_="lat-state") if state else None,
                    class_="lat",
                )
            )
        rows.append(el("tr", cells))
    table = el(
        "table",
        el(
            "caption",
            "Ticks: the gate's warn (dashed) and fail (solid) thresholds",
        ),
        el("thead", el("tr", head)),
        el("tbody", rows),
        class_="latency",
    )
    return el("div", table, class_="scroll-x")


def _evidence(call: CallView) -> Markup:
    if not call.evidence:
        return Markup("")
    items = []
    for e in call.evidence:
        links = []
        if e.turn is not None:
            links.append(
                el(
                    "a",
                    "greeting" if e.turn == 0 else f"turn {e.turn}",
                    href=f"#{_turn_id(call, e.turn)}",
                )
            )
        if e.span_id is not None:
            links.append(
                el(
                    "a",
                    f"span {e.span_name}",
                    href=f"#{_span_id(call, e.span_id)}",
                    class_="to-span",
                )
            )
        items.append(
            el(
                "li",
                el("span", e.kind, class_=f"kind k-{e.kind}"),
                " ",
                e.text,
                el("span", " — ", join(*[x for link in links for x in (link, " ")]))
                if links
                else None,
            )
        )
    return el(
        "div",
        el("h3", "Why it failed" if call.verdict != "pass" else "Findings"),
        el("ul", items, class_="evidence"),
    )


def _incident(call: CallView) -> Markup:
    inc = call.incident
    if inc is None:
        return Markup("")
    replay = {t.index: t for t in call.instance.turns}
    rows = []
    if inc.greeting is not None or 0 in replay:
        r = replay.get(0)
        rows.append(
            el(
                "tr",
                el("th", "greeting", scope="row"),
                el("td", "-"),
                el("td", inc.greeting or "-"),
                el("td", "-"),
                el("td", (r.agent_said if r else None) or "-"),
            )
        )
    for t in inc.turns:
        r = replay.get(t.index)
        rows.append(
            el(
                "tr",
                el("th", f"turn {t.index}", el("br"), el("small", t.timing), scope="row"),
                el("td", t.caller_said or "-"),
                el("td", t.agent_said or "-"),
                el("td", (r.agent_heard if r else None) or "-"),
                el("td", (r.agent_said if r else None) or "-"),
            )
        )
    head = el(
        "tr",
        el("th", "", scope="col"),
        el("th", "caller said (original, redacted)", scope="col"),
        el("th", "agent said (original)", scope="col"),
        el("th", "agent heard (replay)", scope="col"),
        el("th", "agent said (replay)", scope="col"),
    )
    facts = [
        f"{inc.severity}, failing layer {inc.failing_layer}",
        f"occurred {inc.occurred_at}" if inc.occurred_at else "",
        inc.source or "",
        "failed on the original call: " + ", ".join(inc.failed_evaluators)
        if inc.failed_evaluators
        else "",
    ]
    return el(
        "div",
        el("h3", f"Incident {inc.id}: the original call beside this replay"),
        el("p", "; ".join(f for f in facts if f)),
        el("details", el("summary", "What the import recorded"), el("pre", "\n".join(inc.header)))
        if inc.header
        else None,
        el("table", el("thead", head), el("tbody", rows), class_="incident"),
        class_="incident-box",
    )


def _call_section(call: CallView, run: RunView, base: Path, open_: bool) -> Markup:
    inst = call.instance
    tl = timeline(inst)
    player = _player(call, tl, base)
    playable = "<audio" in player
    services = ", ".join(inst.services) or "none"
    meta = [
        f"conversation {inst.conversation_id}",
        f"{call.duration_s:.1f} s" if call.duration_s is not None else "",
        f"trace {inst.trace_state}"
        + (f" ({inst.incomplete_reason})" if inst.incomplete_reason else ""),
        f"{len(inst.spans)} spans from {services}",
    ]
    body = [
        el("p", " · ".join(m for m in meta if m), class_="meta"),
        _evidence(call),
        _incident(call),
        el(
            "div",
            el(
                "div",
                el("h3", "Recording and transcript"),
                player,
                el("div", _transcript(call, tl, playable), class_="transcript-box"),
                class_="col",
            ),
            el("div", el("h3", "Latency per turn"), _latency(call, tl, run.gates), class_="col"),
            class_="call-grid",
        ),
        el("h3", "Waterfall"),
        _waterfall(call, tl, playable),
    ]
    if call.notes:
        body.append(el("ul", [el("li", n) for n in call.notes], class_="notes"))
    return el(
        "section",
        el(
            "details",
            el("summary", el("h2", f"{call.name} ", _verdict(call.verdict))),
            el("div", body, class_="call-body"),
            open=open_,
        ),
        id=call.anchor,
        class_=f"call row-{call.verdict}",
        data_origin=f"{tl.origin:.6f}",
    )


# --- the page ---------------------------------------------------------------------------------


def render_page(run: RunView, base: Path) -> str:
    """The whole report; ``base`` is the directory the file is written to (recordings are
    linked relative to it)."""
    counts = {v: sum(1 for c in run.calls if c.verdict == v) for v in ("pass", "fail", "error")}
    gates_failed = sum(1 for v in run.verdicts if v.status == "fail")
    starts = [c.started_at for c in run.calls if c.started_at is not None]
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(min(starts))) if starts else ""
    summary = (
        f"{len(run.calls)} calls: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['error']} errors"
        + (f"; {len(run.verdicts)} gates, {gates_failed} failed" if run.verdicts else "")
    )
    many = len(run.calls) > 3
    sections = [
        _call_section(call, run, base, open_=not many or call.verdict != "pass")
        for call in run.calls
    ]
    nav = el(
        "nav",
        el(
            "ul",
            el("li", el("a", "calls", href="#calls")),
            el("li", el("a", "gates", href="#gates")),
            el("li", el("a", "sweep", href="#sweep")) if run.sweep else None,
            el("li", el("a", "load test", href="#load")) if run.load else None,
            el("li", el("a", "sensitivity", href="#sensitivity")) if run.sensitivity else None,
            *[el("li", el("a", c.name, href=f"#{c.anchor}")) for c in run.calls[:40]],
        ),
        aria_label="Sections",
    )
    body = el(
        "body",
        el(
            "header",
            el("h1", f"Run {run.title}"),
            el("p", when, " · " if when else "", summary, class_="meta"),
            nav,
        ),
        el(
            "main",
            _load(run),
            _sensitivity(run),
            el(
                "section",
                el("h2", "Calls"),
                _calls_table(run),
                el("ul", [el("li", n) for n in run.notes], class_="notes") if run.notes else None,
                id="calls",
            ),
            el("section", el("h2", "Gates"), _gates_table(run), id="gates"),
            _sweep(run),
            sections,
        ),
        el("script", Markup(_asset("report.js"))),
    )
    head = el(
        "head",
        Markup('<meta charset="utf-8">'),
        Markup('<meta name="viewport" content="width=device-width, initial-scale=1">'),
        Markup('<link rel="icon" href="data:,">'),
        el("title", f"harness report: {run.title}"),
        el("style", Markup(_asset("report.css"))),
    )
    return "<!doctype html>\n" + el("html", head, body, lang="en") + "\n"
