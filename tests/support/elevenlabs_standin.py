"""A local stand-in for the ElevenLabs text-to-speech API, on 127.0.0.1 only.

It answers ``POST /v1/text-to-speech/{voice_id}`` (and ``…/stream``) the way the real API
does for the fields the harness uses: ``xi-api-key`` header required, ``output_format`` in
the query, JSON body with ``text``, ``model_id``, ``voice_settings`` and ``seed``. The audio
is a deterministic tone sequence whose length follows the text and ``voice_settings.speed``,
so tests can tell renders apart. Every request is recorded for assertions.

    with ElevenLabsStandIn() as api:
        monkeypatch.setenv("ELEVENLABS_BASE_URL", api.url)
        ...
        assert api.requests[0].json["model_id"] == "eleven_turbo_v2_5"
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import wave
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

_PATH = re.compile(r"^/v1/text-to-speech/(?P<voice>[^/]+)(?P<stream>/stream)?$")

SECONDS_PER_CHAR = 0.05
LEAD_SECONDS = 0.2


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    voice_id: str | None = None


@dataclass
class _Failure:
    status: int
    detail: dict[str, Any]


def expected_duration(text: str, speed: float | None = None) -> float:
    """How long the stand-in's audio for ``text`` lasts, in seconds."""
    return (LEAD_SECONDS + SECONDS_PER_CHAR * len(text)) / (speed or 1.0)


def render_tone(text: str, voice_id: str, rate: int, speed: float | None = None) -> np.ndarray:
    """Deterministic int16 audio: one tone per word, pitch from a hash of voice and word."""
    total = round(expected_duration(text, speed) * rate)
    out = np.zeros(total, dtype=np.float64)
    words = text.split() or [text]
    span = total // len(words)
    t = np.arange(span) / rate
    for i, word in enumerate(words):
        h = hashlib.sha256(f"{voice_id}/{word}".encode()).digest()
        freq = 120.0 + (h[0] * 256 + h[1]) % 400
        env = np.sin(np.pi * np.arange(span) / max(span, 1)) ** 2
        out[i * span : (i + 1) * span] = 0.5 * env * np.sin(2 * np.pi * freq * t)
    return (out * 32767).astype("<i2")


def _encode(pcm: np.ndarray, rate: int, fmt: str) -> tuple[bytes, str]:
    if fmt.startswith("pcm_"):
        return pcm.tobytes(), "audio/pcm"
    wav = io.BytesIO()
    with wave.open(wav, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    if fmt.startswith("wav_"):
        return wav.getvalue(), "audio/wav"
    from pydub import AudioSegment

    mp3 = io.BytesIO()
    AudioSegment.from_wav(io.BytesIO(wav.getvalue())).export(mp3, format="mp3")
    return mp3.getvalue(), "audio/mpeg"


@dataclass
class ElevenLabsStandIn:
    """Serve the stand-in on ``127.0.0.1`` in a background thread while in a ``with``.

    ``api_key``: when set, any other key gets 401. ``voices``: when set, other voice ids
    get 404.
    """

    api_key: str | None = None
    voices: set[str] | None = None
    requests: list[RecordedRequest] = field(default_factory=list)
    _failures: list[_Failure] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "use the stand-in inside `with`"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, status: int, status_name: str, message: str) -> None:
        """Answer the next request with an API-style error."""
        self._failures.append(_Failure(status, {"status": status_name, "message": message}))

    def __enter__(self) -> ElevenLabsStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, name: str, message: str) -> None:
                body = json.dumps({"detail": {"status": name, "message": message}}).encode()
                self._reply(status, body, "application/json")

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                m = _PATH.match(parts.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                standin.requests.append(
                    RecordedRequest(
                        method="POST",
                        path=parts.path,
                        query=query,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        json=body,
                        voice_id=m["voice"] if m else None,
                    )
                )
                if m is None:
                    return self._error(404, "not_found", f"no route {parts.path}")
                key = self.headers.get("xi-api-key")
                if not key:
                    return self._error(401, "needs_authorization", "xi-api-key header missing")
                if standin.api_key is not None and key != standin.api_key:
                    return self._error(401, "invalid_api_key", "Invalid API key")
                if standin._failures:
                    f = standin._failures.pop(0)
                    return self._reply(
                        f.status, json.dumps({"detail": f.detail}).encode(), "application/json"
                    )
                if standin.voices is not None and m["voice"] not in standin.voices:
                    return self._error(404, "voice_not_found", f"voice {m['voice']} not found")
                if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                    return self._error(422, "invalid_request", "body.text is required")
                fmt = query.get("output_format", "mp3_44100_128")
                rate_match = re.match(r"^(pcm|wav|mp3)_(\d+)", fmt)
                if rate_match is None:
                    return self._error(422, "invalid_output_format", fmt)
                rate = int(rate_match[2])
                speed = (body.get("voice_settings") or {}).get("speed")
                pcm = render_tone(body["text"], m["voice"], rate, speed)
                audio, ctype = _encode(pcm, rate, fmt)
                self._reply(200, audio, ctype)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
