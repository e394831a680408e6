"""Small inline SVG charts: a gate's distribution (an ECDF with its thresholds and the
gate's statistic marked) and a condition sweep. Each chart carries a text description, and
thresholds differ by dash pattern and label as well as by colour."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness.report.html import Markup, el, join

__all__ = ["gate_chart", "load_chart", "sweep_chart"]

W, H = 260, 96
PAD_L, PAD_R, PAD_T, PAD_B = 30, 8, 8, 22


def _fmt(v: float, unit: str | None) -> str:
    from harness.gates.verdict import format_value

    return format_value(v, unit)


def _nice_range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if lo == hi:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    return (0.0 if lo >= 0 and lo - pad < 0 else lo - pad), hi + pad


def gate_chart(verdict: Any, samples: Sequence[float]) -> Markup:
    """The empirical CDF of a gate's samples, with its warn (dashed) and fail (solid)
    thresholds and its statistic (a dot at the percentile, or a dotted line at a mean or
    a rate)."""
    gate = verdict.gate
    unit = verdict.unit
    title = f"{gate.name}: distribution of {gate.metric}"
    values = sorted(v for v in samples if math.isfinite(v))
    if not values:
        return el("p", "no samples", class_="chart-empty")
    if gate.statistic == "rate":
        return _rate_chart(verdict, len(values))
    rate = False
    marks = [t for t in (gate.warn, gate.fail) if t is not None and not rate]
    value = verdict.value
    xs = values + marks + ([value] if value is not None and not rate else [])
    lo, hi = _nice_range(xs)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(v: float) -> float:
        return PAD_L + (v - lo) / (hi - lo) * pw

    def y(p: float) -> float:
        return PAD_T + (1 - p) * ph

    n = len(values)
    d = [f"M{x(lo):.1f},{y(0):.1f}"]
    for i, v in enumerate(values):
        d.append(f"L{x(v):.1f},{y(i / n):.1f}L{x(v):.1f},{y((i + 1) / n):.1f}")
    d.append(f"L{x(hi):.1f},{y(1):.1f}")
    parts: list[Any] = [
        el("title", title),
        el(
            "desc",
            f"n={n}; {gate.statistic} = {_fmt(value, unit) if value is not None else '-'}; "
            + "; ".join(
                f"{k} {_fmt(t, unit)}"
                for k, t in (("warn", gate.warn), ("fail", gate.fail))
                if t is not None
            ),
        ),
        el("line", x1=PAD_L, y1=y(0), x2=W - PAD_R, y2=y(0), class_="axis"),
        el("line", x1=PAD_L, y1=y(0), x2=PAD_L, y2=y(1), class_="axis"),
        el("text", "0", x=PAD_L - 4, y=y(0) + 3, class_="lbl end"),
        el("text", "1", x=PAD_L - 4, y=y(1) + 6, class_="lbl end"),
        el("text", _fmt(lo, unit), x=PAD_L, y=H - 6, class_="lbl"),
        el("text", _fmt(hi, unit), x=W - PAD_R, y=H - 6, class_="lbl end"),
        el("path", d="".join(d), class_="ecdf"),
    ]
    for name, t in (("warn", gate.warn), ("fail", gate.fail)):
        if t is None or rate:
            continue
        parts.append(el("line", x1=x(t), y1=y(0), x2=x(t), y2=y(1), class_=f"thr {name}"))
        parts.append(el("text", name, x=x(t) + 2, y=PAD_T + 8, class_=f"lbl {name}"))
    q = gate.quantile
    if value is not None and q is not None:
        parts.append(el("circle", cx=x(value), cy=y(q), r=3.5, class_="stat"))
        parts.append(el("line", x1=PAD_L, y1=y(q), x2=x(value), y2=y(q), class_="stat-line"))
        parts.append(el("text", gate.statistic, x=x(value) + 5, y=y(q) + 10, class_="lbl"))
    elif value is not None and not rate:
        parts.append(el("line", x1=x(value), y1=y(0), x2=x(value), y2=y(1), class_="stat-line"))
        parts.append(el("text", gate.statistic, x=x(value) + 2, y=y(0.5), class_="lbl"))
    elif value is not None and rate:
        # a rate is the share of non-zero values: 1 - F(0)
        parts.append(
            el("text", f"rate {_fmt(value, unit)}", x=W - PAD_R, y=y(0.5), class_="lbl end")
        )
    return el(
        "svg",
        *parts,
        viewBox=f"0 0 {W} {H}",
        width=W,
        height=H,
        role="img",
        aria_label=f"{title}, n={n}",
        class_="chart",
    )


def _rate_chart(verdict: Any, n: int) -> Markup:
    """A rate on a 0-100 % scale: the share as a bar, its 95 % interval as a whisker, the
    thresholds as lines."""
    gate = verdict.gate
    title = f"{gate.name}: share of {gate.metric} that is non-zero"
    h = 46
    pw = W - PAD_L - PAD_R

    def x(p: float) -> float:
        return PAD_L + max(0.0, min(1.0, p)) * pw

    value = verdict.value or 0.0
    parts: list[Any] = [
        el("title", title),
        el("desc", f"n={n}; rate {value * 100:.1f} %"),
        el("rect", x=PAD_L, y=8, width=max(0.5, x(value) - PAD_L), height=14, class_="rate-fill"),
        el("line", x1=PAD_L, y1=24, x2=W - PAD_R, y2=24, class_="axis"),
        el("text", "0 %", x=PAD_L, y=h - 6, class_="lbl"),
        el("text", "100 %", x=W - PAD_R, y=h - 6, class_="lbl end"),
        el(
            "text",
            f"rate {value * 100:.1f} %",
            x=(PAD_L + W - PAD_R) / 2,
            y=h - 6,
            class_="lbl mid",
        ),
    ]
    if verdict.ci is not None:
        lo, hi = verdict.ci
        parts.append(el("line", x1=x(lo), y1=15, x2=x(hi), y2=15, class_="ci"))
    marks = [(k, t) for k, t in (("warn", gate.warn), ("fail", gate.fail)) if t is not None]
    close = len(marks) == 2 and abs(x(marks[0][1]) - x(marks[1][1])) < 30
    for name, t in marks:
        parts.append(
            el(
                "line",
                el("title", f"{name} {t * 100:g} %"),
                x1=x(t),
                y1=4,
                x2=x(t),
                y2=26,
                class_=f"thr {name}",
            )
        )
        if not close:  # close thresholds: the dash tells them apart, the table says which
            parts.append(el("text", name, x=x(t) - 2, y=7, class_=f"lbl end {name}"))
    return el(
        "svg",
        *parts,
        viewBox=f"0 0 {W} {h}",
        width=W,
        height=h,
        role="img",
        aria_label=f"{title}, n={n}",
        class_="chart",
    )


def sweep_chart(rows: Sequence[Any]) -> Markup:
    """Per condition: WER (hatched bar) and task completion (solid bar), in percent."""
    if not rows:
        return Markup("")
    bw, gap = 14, 14
    width = max(W, PAD_L + len(rows) * (2 * bw + gap) + PAD_R)
    height = 150
    ph = height - PAD_T - 40

    def y(p: float) -> float:
        return PAD_T + (1 - max(0.0, min(1.0, p))) * ph

    parts: list[Any] = [
        el("title", "Condition sweep: WER and task completion by condition"),
        el("line", x1=PAD_L, y1=y(0), x2=width - PAD_R, y2=y(0), class_="axis"),
        el("text", "0 %", x=PAD_L - 4, y=y(0) + 3, class_="lbl end"),
        el("text", "100 %", x=PAD_L - 4, y=y(1) + 6, class_="lbl end"),
    ]
    for i, r in enumerate(rows):
        x0 = PAD_L + gap / 2 + i * (2 * bw + gap)
        for j, (name, v, cls) in enumerate(
            (("WER", r.wer, "bar-wer"), ("task", r.task_completion, "bar-task"))
        ):
            if v is None:
                continue
            parts.append(
                el(
                    "rect",
                    el("title", f"{r.condition}: {name} {v * 100:.1f} %"),
                    x=x0 + j * bw,
                    y=y(v),
                    width=bw - 2,
                    height=max(0.5, y(0) - y(v)),
                    class_=cls,
                )
            )
        parts.append(
            el(
                "text",
                r.condition,
                x=x0 + bw,
                y=y(0) + 12,
                class_="lbl mid",
            )
        )
    parts.append(el("rect", x=PAD_L, y=height - 14, width=10, height=8, class_="bar-wer"))
    parts.append(el("text", "WER", x=PAD_L + 14, y=height - 7, class_="lbl"))
    parts.append(el("rect", x=PAD_L + 50, y=height - 14, width=10, height=8, class_="bar-task"))
    parts.append(el("text", "task completion", x=PAD_L + 64, y=height - 7, class_="lbl"))
    return el(
        "svg",
        join(parts),
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        role="img",
        aria_label="WER and task completion by condition (the table above has the figures)",
        class_="chart",
    )


_LOAD_SERIES = (
    # (key in a step's latency, label, css class, marker)
    ("p50_ms", "p50", "lat-p50", "circle"),
    ("p90_ms", "p90", "lat-p90", "square"),
    ("p99_ms", "p99", "lat-p99", "triangle"),
)


def _marker(kind: str, cx: float, cy: float, cls: str, tip: str) -> Markup:
    if kind == "circle":
        return el("circle", el("title", tip), cx=cx, cy=cy, r=3.5, class_=cls)
    if kind == "square":
        return el("rect", el("title", tip), x=cx - 3.5, y=cy - 3.5, width=7, height=7, class_=cls)
    pts = f"{cx:.1f},{cy - 4.5:.1f} {cx - 4.5:.1f},{cy + 3.5:.1f} {cx + 4.5:.1f},{cy + 3.5:.1f}"
    return el("polygon", el("title", tip), points=pts, class_=cls)


def load_chart(steps: Sequence[Any], knee: Any, factor: float) -> Markup:
    """A load test: per concurrency level, the p50, p90 and p99 response latency (solid,
    dashed and dotted lines with circle, square and triangle markers), the knee's limit
    (``factor`` times step 1's p90, dashed), the knee (a solid line), and steps where the
    harness was the bottleneck (hatched). ``steps`` are the ``steps`` of a load file,
    ``knee`` its ``knee`` (or None)."""
    if not steps:
        return Markup("")
    width = max(W * 2, PAD_L + 24 + len(steps) * 70 + PAD_R)
    height = 200
    left, top, bottom = PAD_L + 24, PAD_T + 6, height - 44
    values = [
        v
        for s in steps
        for key, *_ in _LOAD_SERIES
        if isinstance(v := (s.get("latency") or {}).get(key), (int, float)) and math.isfinite(v)
    ]
    first = (steps[0].get("latency") or {}).get("p90_ms")
    limit = factor * first if isinstance(first, (int, float)) and first > 0 else None
    top_v = max([*values, limit or 0.0, 1.0]) * 1.08

    def x(i: int) -> float:
        span = width - PAD_R - 20 - left
        return left + 20 + (span * i / (len(steps) - 1) if len(steps) > 1 else span / 2)

    def y(v: float) -> float:
        return top + (1 - v / top_v) * (bottom - top)

    unit = "ms"
    parts: list[Any] = [
        el("title", "Load test: response latency by concurrency"),
        el(
            "desc",
            "; ".join(
                f"{s.get('concurrency')} concurrent: "
                + ", ".join(
                    f"{label} {_fmt(v, unit)}"
                    for key, label, *_ in _LOAD_SERIES
                    if isinstance(v := (s.get("latency") or {}).get(key), (int, float))
                )
                + (" (harness-limited)" if s.get("harness_limited") else "")
                for s in steps
            )
            + (f"; knee at {knee.get('concurrency')}" if knee else "; no knee"),
        ),
        el(
            "defs",
            Markup(
                '<pattern id="rig-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
                'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" '
                'class="rig-hatch-line"/></pattern>'
            ),
        ),
    ]
    for i, s in enumerate(steps):
        if s.get("harness_limited"):
            half = (x(1) - x(0)) / 2 if len(steps) > 1 else 30
            parts.append(
                el(
                    "rect",
                    el("title", f"{s.get('concurrency')} concurrent: harness-limited"),
                    x=x(i) - half,
                    y=top,
                    width=2 * half,
                    height=bottom - top,
                    class_="rig-limited",
                )
            )
            parts.append(el("text", "rig", x=x(i), y=top + 10, class_="lbl mid"))
    parts += [
        el("line", x1=left, y1=y(0), x2=width - PAD_R, y2=y(0), class_="axis"),
        el("line", x1=left, y1=y(0), x2=left, y2=top, class_="axis"),
        el("text", "0", x=left - 4, y=y(0) + 3, class_="lbl end"),
        el("text", _fmt(top_v / 1.08, unit), x=left - 4, y=y(top_v / 1.08) + 3, class_="lbl end"),
        el("text", "concurrent calls", x=(left + width) / 2, y=height - 22, class_="lbl mid"),
    ]
    for i, s in enumerate(steps):
        parts.append(el("text", str(s.get("concurrency")), x=x(i), y=y(0) + 12, class_="lbl mid"))
    if limit is not None:
        parts.append(
            el("line", x1=left, y1=y(limit), x2=width - PAD_R, y2=y(limit), class_="thr warn")
        )
        parts.append(
            el(
                "text",
                f"{factor:g}x step 1 p90",
                x=width - PAD_R,
                y=y(limit) - 3,
                class_="lbl end warn",
            )
        )
    for key, label, cls, marker in _LOAD_SERIES:
        pts = [
            (x(i), y(v), s.get("concurrency"), v)
            for i, s in enumerate(steps)
            if isinstance(v := (s.get("latency") or {}).get(key), (int, float)) and math.isfinite(v)
        ]
        if len(pts) > 1:
            parts.append(
                el("polyline", points=" ".join(f"{a:.1f},{b:.1f}" for a, b, *_ in pts), class_=cls)
            )
        for a, b, n, v in pts:
            parts.append(_marker(marker, a, b, cls, f"{n} concurrent: {label} {_fmt(v, unit)}"))
    if knee:
        idx = next(
            (i for i, s in enumerate(steps) if s.get("concurrency") == knee.get("concurrency")),
            None,
        )
        if idx is not None:
            blame = " (harness)" if knee.get("blame") == "harness" else ""
            parts.append(el("line", x1=x(idx), y1=y(0), x2=x(idx), y2=top, class_="thr fail"))
            parts.append(el("text", f"knee{blame}", x=x(idx) + 3, y=top + 22, class_="lbl fail"))
    lx = left
    for _, label, cls, marker in _LOAD_SERIES:
        parts.append(el("line", x1=lx, y1=height - 8, x2=lx + 18, y2=height - 8, class_=cls))
        parts.append(_marker(marker, lx + 9, height - 8, cls, label))
        parts.append(el("text", label, x=lx + 22, y=height - 5, class_="lbl"))
        lx += 60
    return el(
        "svg",
        join(parts),
        viewBox=f"0 0 {width} {height}",
        width=width,
        height=height,
        role="img",
        aria_label="Response latency p50, p90 and p99 by concurrency, with the knee (the table "
        "above has the figures)",
        class_="chart load-chart",
    )
