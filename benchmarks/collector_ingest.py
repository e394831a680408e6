"""Spans per second the trace collector ingests: protobuf over loopback HTTP, on one core.

The collector and the client posting to it share one process, one event loop and one CPU
(pinned where the platform allows), so the figure is what a single core sustains for
receiving, decompressing, decoding and indexing spans. Spans look like livekit-agents' as
harness_instrument stamps them (over a dozen attributes each) and are spread over many
conversations.

    .venv/bin/python benchmarks/collector_ingest.py [--batches 120] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import time

import aiohttp

from harness.trace import conventions as c
from harness.trace.collector import Collector
from harness.trace.instance import Span
from harness.trace.otlp import spans_to_proto

T0 = 1_763_750_000 * 10**9


def make_batches(n_batches: int, size: int, conversations: int, seed: int = 7) -> list[list[Span]]:
    rng = random.Random(seed)
    names = ["user_turn", "agent_turn", "llm_node", "tts_node", "function_tool", "eou_detection"]
    resource = {
        c.SERVICE_NAME: "clinic-agent",
        c.AGENT_LAYER: "conversational",
        c.AGENT_VERSION: "1.4.0",
        c.SERVICE_VERSION: "1.4.0",
        c.DEPLOYMENT_ENVIRONMENT_NAME: "bench",
        c.DEPLOYMENT_ENVIRONMENT: "bench",
        "telemetry.sdk.language": "python",
        "process.pid": 4242,
    }
    batches = []
    span_no = 0
    for _ in range(n_batches):
        batch = []
        for _ in range(size):
            span_no += 1
            conv = span_no % conversations
            start = T0 + span_no * 1_000_000
            batch.append(
                Span(
                    trace_id=f"{conv + 1:032x}",
                    span_id=f"{span_no:016x}",
                    parent_span_id=f"{span_no - 1:016x}" if span_no % 8 else None,
                    name=names[span_no % len(names)],
                    start_ns=start,
                    end_ns=start + rng.randrange(1_000_000, 900_000_000),
                    attributes={
                        c.CONVERSATION_ID: f"c-{conv:05d}",
                        c.AGENT_LAYER: "conversational",
                        c.AGENT_VERSION: "1.4.0",
                        c.SERVICE_VERSION: "1.4.0",
                        c.DEPLOYMENT_ENVIRONMENT_NAME: "bench",
                        c.DEPLOYMENT_ENVIRONMENT: "bench",
                        c.LK_SPEECH_ID: f"speech_{span_no:x}",
                        c.LK_RESPONSE_TTFT: rng.random(),
                        c.LK_E2E_LATENCY: rng.random() * 2,
                        c.LK_INTERRUPTED: rng.random() < 0.1,
                        c.LK_PII_RESPONSE_TEXT: "I have an opening on Tuesday at ten, shall I?",
                        "lk.generation_count": rng.randrange(1, 4),
                        "lk.function_tools": ["check_availability", "request_booking"],
                        "room_id": "RM_bench",
                    },
                    resource=resource,
                    scope_name="livekit-agents",
                    scope_version="1.8.9",
                    flags=0x100,
                )
            )
        batches.append(batch)
    return batches


async def run(bodies: list[bytes], concurrency: int, gzipped: bool) -> tuple[float, Collector]:
    col = Collector(retention_s=3600, max_instances=100_000)
    await col.start()
    headers = {"Content-Type": "application/x-protobuf"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession() as http:

        async def worker() -> None:
            while queue:
                body = queue.pop()
                async with http.post(col.traces_url, data=body, headers=headers) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"collector answered {resp.status}: {await resp.text()}")
                    await resp.read()

        # warm the connection pool
        async with http.post(col.traces_url, data=b"", headers=headers) as resp:
            await resp.read()
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t
    await col.stop()
    return elapsed, col


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--conversations", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--gzip", action="store_true", help="compress bodies as exporters may")
    args = ap.parse_args()

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "unpinned"

    batches = make_batches(args.batches, args.batch_size, args.conversations)
    bodies = [spans_to_proto(b).SerializeToString() for b in batches]
    if args.gzip:
        bodies = [gzip.compress(b, compresslevel=6) for b in bodies]
    total = args.batches * args.batch_size

    elapsed, col = asyncio.run(run(bodies, args.concurrency, args.gzip))
    stats = col.stats
    if stats.spans_accepted != total or stats.duplicates:
        raise SystemExit(f"ingested {stats.spans_accepted} of {total} spans ({stats})")

    # the same bodies without HTTP: what decoding and indexing alone cost
    direct = Collector(retention_s=3600, max_instances=100_000)
    t = time.perf_counter()
    for body in bodies:
        direct.ingest(body, "application/x-protobuf", "gzip" if args.gzip else None)
    direct_s = time.perf_counter() - t

    kib = sum(len(b) for b in bodies) / len(bodies) / 1024
    print(
        f"collector ingest: {total / elapsed:,.0f} spans/s over loopback HTTP "
        f"(protobuf{'+gzip' if args.gzip else ''}, {args.batch_size} spans/batch, "
        f"{args.batches} batches, {kib:.0f} KiB/batch, {args.concurrency} in flight, "
        f"cores: {cores}, {stats.instances} conversations)"
    )
    print(f"decode + index only: {total / direct_s:,.0f} spans/s")


if __name__ == "__main__":
    main()
