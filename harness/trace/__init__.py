"""The trace layer: OTLP receiver, Instance and its views, OTLP/JSON file io, names.

Names are imported lazily, so ``from harness.trace import conventions`` (our own names come
from the separate ``harness_instrument`` distribution, which user services import) pulls in
neither aiohttp nor the protobuf codecs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.trace.collector import Collector, CollectorThread, IngestResult
    from harness.trace.instance import (
        Action,
        Instance,
        Span,
        SpanEvent,
        SpanLink,
        ToolCall,
        Turn,
        WorkflowStep,
    )
    from harness.trace.otlp import (
        TraceFileError,
        load_instance,
        load_instances,
        read_spans,
        save_instance,
    )

_EXPORTS = {
    "Collector": "harness.trace.collector",
    "CollectorThread": "harness.trace.collector",
    "IngestResult": "harness.trace.collector",
    "Action": "harness.trace.instance",
    "Instance": "harness.trace.instance",
    "Span": "harness.trace.instance",
    "SpanEvent": "harness.trace.instance",
    "SpanLink": "harness.trace.instance",
    "ToolCall": "harness.trace.instance",
    "Turn": "harness.trace.instance",
    "WorkflowStep": "harness.trace.instance",
    "TraceFileError": "harness.trace.otlp",
    "load_instance": "harness.trace.otlp",
    "load_instances": "harness.trace.otlp",
    "read_spans": "harness.trace.otlp",
    "save_instance": "harness.trace.otlp",
}

__all__ = [
    "Action",
    "Collector",
    "CollectorThread",
    "IngestResult",
    "Instance",
    "Span",
    "SpanEvent",
    "SpanLink",
    "ToolCall",
    "TraceFileError",
    "Turn",
    "WorkflowStep",
    "load_instance",
    "load_instances",
    "read_spans",
    "save_instance",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.trace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
