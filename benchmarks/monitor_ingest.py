"""Production instances per second through the monitor's ingest, on one core: OTLP protobuf
bodies decoded and joined, each conversation finished, scored by every evaluator, checked
against the per-call conditions and stored in SQLite (WAL, one transaction per call). And
the peak memory of the receiver holding 10,000 open conversations.

The instances are the hand-built clinic booking call (52 spans across the three layers),
each with its own ids; one in five is faulty and becomes an incident candidate.

    .venv/bin/python benchmarks/monitor_ingest.py [--calls 300] [--open 10000]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.monitor.ingest import ProductionIngest
from harness.monitor.store import MonitorStore
from harness.trace.otlp import spans_to_proto
from tests.support.production import production_call


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def throughput(calls: int, work: Path) -> tuple[float, int]:
    now = time.time()
    bodies = [
        spans_to_proto(
            production_call(i, start=now - 3600, faulty=i % 5 == 0).spans
        ).SerializeToString()
        for i in range(calls)
    ]
    clock = [0.0]
    with MonitorStore(work / "monitor.sqlite3") as store:
        ingest = ProductionIngest(store, work, grace_s=0.0, settle_s=0.0, clock=lambda: clock[0])
        t0 = time.perf_counter()
        for body in bodies:
            assert ingest.feed(body) == 200
        clock[0] = 1e9  # every conversation is now quiet and finished
        scored = len(ingest.poll())
        elapsed = time.perf_counter() - t0
        assert store.count_calls() == calls == scored, (store.count_calls(), calls, scored)
        candidates = len(store.candidates())
    return calls / elapsed, candidates


def open_conversations(n: int, work: Path) -> tuple[float, float]:
    """Peak traced Python memory (MiB) and max RSS (MiB) while ``n`` conversations are open:
    every span of each call but the session's root, so none can finish."""
    now = time.time()
    gc.collect()
    tracemalloc.start()
    with MonitorStore(work / "open.sqlite3") as store:
        ingest = ProductionIngest(store, work, max_open=n + 10)
        for i in range(n):
            spans = [s for s in production_call(i, start=now).spans if s.name != "agent_session"]
            ingest.feed(spans_to_proto(spans).SerializeToString())
            if i % 1000 == 999:
                print(f"  {i + 1} conversations open", file=sys.stderr, flush=True)
        assert len(ingest.collector.conversation_ids()) == n
        _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak / 2**20, rss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--open", type=int, default=10_000)
    args = ap.parse_args()
    pin_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        rate, candidates = throughput(args.calls, Path(tmp))
        print(
            f"ingest: {rate:.1f} production instances/s on one core "
            f"({args.calls} calls of 52 spans, decode+join+score+store; {candidates} candidates)"
        )
        peak, rss = open_conversations(args.open, Path(tmp))
        print(
            f"open conversations: {args.open} held, peak Python heap {peak:.0f} MiB "
            f"({peak * 1024 / args.open:.1f} KiB each), max RSS {rss:.0f} MiB"
        )


if __name__ == "__main__":
    main()
