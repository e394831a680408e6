"""A hostile or broken client cannot make the receiver hang, hold memory or crash: headers
that never end, a body that never ends, a Content-Length that lies, a body that inflates
past the limit. After each, the receiver answers a normal export."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator

import pytest
from google.rpc import status_pb2

from harness.trace import conventions as c
from harness.trace.collector import Collector, CollectorThread
from harness.trace.instance import Span
from harness.trace.otlp import spans_to_proto

PB = "application/x-protobuf"
T0 = 1_763_750_000 * 10**9


def body_of(*ids: int, cid: str = "c-1") -> bytes:
    spans = [
        Span(
            trace_id=f"{1:032x}",
            span_id=f"{n:016x}",
            parent_span_id=None,
            name="work",
            start_ns=T0,
            end_ns=T0 + 10,
            attributes={c.CONVERSATION_ID: cid},
        )
        for n in ids
    ]
    return spans_to_proto(spans).SerializeToString()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True


@pytest.fixture
def col() -> Iterator[CollectorThread]:
    with Collector.run_in_thread(
        max_body_bytes=100_000, read_timeout_s=0.5, idle_timeout_s=0.5
    ) as handle:
        yield handle


def connect(col: CollectorThread) -> socket.socket:
    return socket.create_connection(("127.0.0.1", col.collector._bound_port), timeout=5)


def head(length: str | None = None, extra: str = "") -> bytes:
    text = f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PB}\r\n{extra}"
    if length is not None:
        text += f"Content-Length: {length}\r\n"
    return (text + "\r\n").encode()


def response(s: socket.socket) -> tuple[int, bytes]:
    resp = http.client.HTTPResponse(s)
    resp.begin()
    return resp.status, resp.read()


def still_serving(col: CollectorThread) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", col.collector._bound_port, timeout=5)
    try:
        conn.request(
            "POST", "/v1/traces", body=body_of(99, cid="alive"), headers={"Content-Type": PB}
        )
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    assert len(col.spans("alive")) == 1


def test_headers_that_never_end_are_cut_off_when_idle(col):
    with connect(col) as s:
        s.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")  # and nothing more
        t = time.monotonic()
        assert s.recv(100) == b""  # closed by the receiver
        assert 0.4 < time.monotonic() - t < 3
    still_serving(col)


def test_a_connection_that_sends_nothing_is_closed_when_idle(col):
    with connect(col) as s:
        t = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t < 3


def test_a_body_that_never_ends_is_408_and_releases_what_it_held(col):
    with connect(col) as s:
        s.sendall(head("50000") + b"\x0a" * 20_000)
        assert wait_until(lambda: col.collector.stats.inflight_bytes == 20_000)
        status, reply = response(s)
    assert status == 408
    assert (
        "did not arrive within 0.5s (20000 bytes came)"
        in status_pb2.Status.FromString(reply).message
    )
    stats = col.collector.stats
    assert (stats.timed_out, stats.bad_requests, stats.inflight_bytes) == (1, 1, 0)
    still_serving(col)


def test_a_content_length_over_the_limit_is_refused_before_the_body(col):
    with connect(col) as s:
        s.sendall(head(str(10**12)) + b"\x0a\x00")
        status, reply = response(s)
    assert status == 413
    assert status_pb2.Status.FromString(reply).message == (
        "body of 1000000000000 bytes is larger than 100000 bytes"
    )
    assert col.collector.stats.inflight_bytes == 0
    still_serving(col)


def test_declared_sizes_hold_nothing_only_bytes_that_came_do(col):
    # twenty clients each declare the largest body, send a byte and stall: a lying
    # Content-Length must not take the budget of bytes in flight from honest exporters
    socks = [connect(col) for _ in range(20)]
    try:
        for s in socks:
            s.sendall(head("100000") + b"\x0a")
        assert wait_until(lambda: col.collector.stats.inflight_bytes == 20)
        still_serving(col)
        assert col.collector.stats.throttled == 0
    finally:
        for s in socks:
            s.close()
    assert wait_until(lambda: col.collector.stats.inflight_bytes == 0)


def test_a_content_length_shorter_than_the_body(col):
    body = body_of(1, 2, 3)
    with connect(col) as s:
        # the declared bytes first: a cut body, ours to refuse
        s.sendall(head(str(len(body) - 5)) + body[:-5])
        status, reply = response(s)
        assert status == 400
        assert status_pb2.Status.FromString(reply).message.startswith("malformed")
        # the rest is read as the next request: not HTTP, refused by the server
        s.sendall(body[-5:])
        status, _ = response(s)
        assert status == 400
    with connect(col) as s:  # all in one write: the server refuses the lot
        s.sendall(head(str(len(body) - 5)) + body)
        status, _ = response(s)
        assert status == 400
    assert col.spans("c-1") == ()
    still_serving(col)


@pytest.mark.parametrize(
    "header",
    [
        "Content-Length: abc\r\n",
        "Content-Length: -5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_a_malformed_content_length_is_400_from_the_server(col, header):
    with connect(col) as s:
        s.sendall(head(extra=header) + b"12345")
        status, _ = response(s)
    assert status == 400
    still_serving(col)


def test_a_chunked_body_past_the_limit_is_413_midway(col):
    chunk = b"\x0a" * 30_000
    with connect(col) as s:
        s.sendall(head(extra="Transfer-Encoding: chunked\r\n"))
        for _ in range(4):
            s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        status, reply = response(s)
    assert status == 413
    assert "larger than 100000 bytes" in status_pb2.Status.FromString(reply).message
    still_serving(col)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_that_inflates_past_the_limit_is_413(col, encoding):
    raw = b"\x00" * 10_000_000
    bomb = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    assert len(bomb) < 20_000
    with connect(col) as s:
        s.sendall(head(str(len(bomb)), extra=f"Content-Encoding: {encoding}\r\n") + bomb)
        status, reply = response(s)
    assert status == 413
    assert status_pb2.Status.FromString(reply).message == (
        "decompressed body larger than 100000 bytes"
    )
    assert col.collector.stats.inflight_bytes == 0
    still_serving(col)


def test_a_client_that_hangs_up_midway_leaves_nothing_held(col):
    s = connect(col)
    s.sendall(head("50000") + b"\x0a" * 30_000)
    assert wait_until(lambda: col.collector.stats.inflight_bytes == 30_000)
    s.close()
    assert wait_until(lambda: col.collector.stats.inflight_bytes == 0)
    assert col.collector.stats.bad_requests == 1
    still_serving(col)
