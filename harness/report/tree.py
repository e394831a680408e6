"""``harness show``: an Instance as one tree across its layers, with durations and the
attributes that matter when reading a call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from harness.trace import conventions as c
from harness.trace.health import TraceHealth
from harness.trace.instance import Instance, Span

LAYER_ORDER = (c.LAYER_CONVERSATIONAL, c.LAYER_BACKGROUND, c.LAYER_WORKFLOW)
# livekit-agents internals that say little when reading a call; `harness show --all` keeps them
QUIET_SPANS = frozenset(
    {
        "llm_request",
        "llm_request_run",
        "tts_request",
        "tts_request_run",
        "tts_stream_adapter",
        "event_loop_blocked",
        "setup_toolsets",
        "on_enter",
        "on_exit",
        "user_speaking",
        "on_user_turn_completed",
        "session_end_upload",
        "drain_agent_activity",
    }
)
MAX_TEXT = 60


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _secs(value: Any) -> str:
    try:
        return f"{float(value) * 1000:.0f}ms"
    except (TypeError, ValueError):
        return "?"


def _duration(span: Span) -> str:
    ms = span.duration_ms
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.0f}ms"


def key_attributes(span: Span) -> list[str]:
    """The few attributes worth a glance, by span kind."""
    a = span.attributes
    out: list[str] = []
    if c.ACTION_NAME in a:
        out.append(f"action={a[c.ACTION_NAME]}")
        out.append("mutating" if a.get(c.ACTION_MUTATING) else "read-only")
        out.append(f"approval={a.get(c.ACTION_APPROVAL, 'none')}")
    if c.INTENT_NAME in a:
        out.append(f"intent={a[c.INTENT_NAME]}")
        if c.INTENT_OUTCOME in a:
            out.append(f"outcome={a[c.INTENT_OUTCOME]}")
    if c.LK_FUNCTION_TOOL_NAME in a:
        out.append(f"tool={a[c.LK_FUNCTION_TOOL_NAME]}")
        if c.LK_PII_FUNCTION_TOOL_ARGUMENTS in a:
            out.append(f"args={_short(a[c.LK_PII_FUNCTION_TOOL_ARGUMENTS])}")
        if a.get(c.LK_FUNCTION_TOOL_IS_ERROR):
            out.append("ERROR")
    for key, label in (
        (c.LK_E2E_LATENCY, "e2e"),
        (c.LK_RESPONSE_TTFT, "ttft"),
        (c.LK_RESPONSE_TTFB, "ttfb"),
        (c.LK_END_OF_TURN_DELAY, "eot"),
    ):
        if key in a:
            out.append(f"{label}={_secs(a[key])}")
    if a.get(c.LK_INTERRUPTED):
        out.append("interrupted")
    if c.LK_PII_USER_TRANSCRIPT in a:
        out.append(f"heard={_short(a[c.LK_PII_USER_TRANSCRIPT])!s}")
    elif span.name == "agent_turn" and c.LK_PII_RESPONSE_TEXT in a:
        out.append(f"said={_short(a[c.LK_PII_RESPONSE_TEXT])}")
    if span.status == "error":
        out.append(f"STATUS=error {_short(span.status_message)}".rstrip())
    return out


def _line(span: Span, depth: int) -> str:
    attrs = "  ".join(key_attributes(span))
    return f"{'  ' * depth}{span.name}  {_duration(span)}" + (f"  {attrs}" if attrs else "")


def _walk(
    instance: Instance, span: Span, layer: str | None, depth: int, everything: bool
) -> Iterator[str]:
    """The subtree under ``span`` in the same layer, depth first (a loop, not recursion:
    a trace may nest deeper than Python's stack)."""
    stack = [(span, depth)]
    while stack:
        s, d = stack.pop()
        yield _line(s, d)
        kids = [
            k
            for k in sorted(instance.children(s), key=lambda k: k.start_ns)
            if (everything or k.name not in QUIET_SPANS) and (k.layer == layer or k.layer is None)
        ]
        stack.extend((k, d + 1) for k in reversed(kids))


def _layer_roots(instance: Instance, layer: str, spans: list[Span]) -> list[Span]:
    roots = []
    for s in spans:
        parent = instance.parent(s)
        if parent is None or (parent.layer != layer and parent.layer is not None):
            roots.append(s)
    return sorted(roots, key=lambda s: s.start_ns)


def render_tree(instance: Instance, *, everything: bool = False) -> str:
    """The instance as text; ``everything`` also shows livekit-agents' internal spans."""
    services = sorted({s.service_name or "?" for s in instance.spans})
    health = TraceHealth.of(instance)
    label = {"complete": "", "partial": "PARTIAL", "none": "INCOMPLETE"}[health.state]
    state = f"{label}: {health.reason}" if label else "complete"
    lines = [
        f"conversation {instance.conversation_id}  ({state})",
        f"{len(instance.spans)} spans from {len(services)} services: {', '.join(services)}",
    ]
    if instance.data_errors:
        n = len(instance.data_errors)
        lines.append(
            f"DATA ERRORS: {n} value{'s' if n != 1 else ''} that cannot be true, quarantined "
            "(gates on the metrics they touch fail):"
        )
        lines.extend(f"  {e.kind}: {e.describe()}" for e in instance.data_errors)
    layers = instance.layers
    names = [n for n in LAYER_ORDER if n in layers] + sorted(
        n for n in layers if n not in LAYER_ORDER
    )
    for name in names:
        spans = list(layers[name])
        svc = sorted({s.service_name or "?" for s in spans})
        lines.append("")
        lines.append(f"[{name or 'no layer'}]  {', '.join(svc)}  ({len(spans)} spans)")
        for root in _layer_roots(instance, name, spans):
            parent = instance.parent(root)
            if parent is not None:
                lines.append(f"  ↳ under {parent.layer} span {parent.name!r}")
            elif root.links:
                lines.append("  ↳ linked to the call")
            lines.extend(_walk(instance, root, name, 1, everything))
    caller = instance.caller
    if caller:
        said = [t for t in caller.get("turns", []) if t.get("kind") == "say"]
        lat = [t["response_latency_ms"] for t in said if t.get("response_latency_ms") is not None]
        lines.append("")
        lines.append(
            f"[caller]  {len(said)} spoken turns, response latency "
            + (f"{min(lat):.0f}–{max(lat):.0f} ms" if lat else "n/a")
            + f", recording {instance.recording or 'none'}"
        )
        if caller.get("error"):
            lines.append(f"  error ({caller['error']['kind']}): {caller['error']['message']}")
    return "\n".join(lines)
