"""Spans that end just before a job process exits still reach the collector.

livekit-agents' job processes leave through multiprocessing's exit path (os._exit), which
skips atexit; harness_instrument flushes from multiprocessing's finalizers too."""

import multiprocessing as mp
import os

from harness.trace.collector import Collector


def _child(endpoint: str) -> None:
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "60000"  # only the exit flush can send it
    import harness_instrument as instrument

    instrument.init_tracing("exit-test", layer="conversational", livekit=False)
    instrument.set_conversation_id("c-exit")
    with instrument.intent("last words"):
        pass


def test_spans_ending_at_process_exit_are_exported() -> None:
    with Collector.run_in_thread() as collector:
        proc = mp.get_context("forkserver").Process(target=_child, args=(collector.endpoint,))
        proc.start()
        proc.join(30)
        assert proc.exitcode == 0
        instance = collector.wait_for("c-exit", lambda i: bool(i.spans), timeout=5)
        assert [s.name for s in instance.spans] == ["intent last words"]
