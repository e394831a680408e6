"""Zero-code set-up from the standard OpenTelemetry variables, as ``opentelemetry-instrument``
does. Importing this module configures nothing; :func:`configure_from_env` does, and
``harness-instrument CMD`` (through ``sitecustomize``) or
``import harness_instrument.autoconfigure`` call it.

What it reads, and only that:

- ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``: nothing is set up;
- ``OTEL_SERVICE_NAME`` (else ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, else a name
  derived from the command line: the script's stem or the ``-m`` module, else
  ``unknown_service``);
- ``OTEL_RESOURCE_ATTRIBUTES``: ``agent.layer`` (default ``conversational``), the version
  from ``service.version`` or ``agent.version``, the environment from
  ``deployment.environment.name`` or the older ``deployment.environment``; the other
  attributes are kept on the resource;
- ``OTEL_EXPORTER_OTLP_*`` (endpoint, headers, timeout, compression, certificates), read by
  the SDK's OTLP/HTTP exporter itself. Only OTLP/HTTP protobuf is exported.

livekit-agents is not imported (it is heavy at interpreter start-up): its tracer takes the
global provider this sets, so its spans are exported and stamped all the same.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import harness_instrument
from harness_instrument import conventions as c
from harness_instrument.launcher import service_name_for_python_args

__all__ = ["configure_from_env", "resource_attributes", "settings_from_env"]

log = logging.getLogger("harness_instrument")

DEFAULT_LAYER = c.LAYER_CONVERSATIONAL
UNKNOWN_SERVICE = "unknown_service"
_HTTP_PROTOBUF = "http/protobuf"
_DIST = "livekit-call-harness-instrument"

_lock = threading.Lock()
_done = False
_provider: TracerProvider | None = None


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def resource_attributes(environ: Mapping[str, str]) -> dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k=v``, values percent-decoded) with
    ``OTEL_SERVICE_NAME`` over ``service.name``, as the SDK's resource detector reads them.
    Malformed items are skipped (the SDK logs them when it builds the resource)."""
    attrs: dict[str, str] = {}
    for item in (environ.get("OTEL_RESOURCE_ATTRIBUTES") or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attrs[key.strip()] = unquote(value.strip())
    if environ.get("OTEL_SERVICE_NAME"):
        attrs[c.SERVICE_NAME] = environ["OTEL_SERVICE_NAME"]
    return attrs


def _command_line_name() -> str | None:
    orig = list(getattr(sys, "orig_argv", None) or [])
    if len(orig) > 1:
        return service_name_for_python_args(orig[1:])
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and argv0 not in ("-c", "-m", "-"):
        return service_name_for_python_args([argv0])
    return None


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The :func:`harness_instrument.init_tracing` arguments the variables ask for, or None
    when they turn tracing off. Logs a warning for what it cannot honour. Pure otherwise."""
    if _is_true(environ.get("OTEL_SDK_DISABLED")):
        return None
    exporters = [
        e.strip().lower() for e in (environ.get("OTEL_TRACES_EXPORTER") or "otlp").split(",")
    ]
    exporters = [e for e in exporters if e]
    if exporters and all(e == "none" for e in exporters):
        return None
    others = [e for e in exporters if e not in ("otlp", "none")]
    if others:
        log.warning(
            "OTEL_TRACES_EXPORTER=%s: %s exports only otlp; spans go over OTLP/HTTP protobuf",
            environ.get("OTEL_TRACES_EXPORTER"),
            _DIST,
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if protocol and protocol.strip().lower() != _HTTP_PROTOBUF:
        log.warning(
            "OTEL_EXPORTER_OTLP_PROTOCOL=%s is not supported: %s exports only OTLP/HTTP "
            "protobuf, so spans go over http/protobuf; point OTEL_EXPORTER_OTLP_ENDPOINT at "
            "the collector's OTLP/HTTP port (usually 4318)",
            protocol.strip(),
            _DIST,
        )
    attrs = resource_attributes(environ)
    layer = attrs.get(c.AGENT_LAYER) or DEFAULT_LAYER
    if layer not in c.LAYERS:
        log.warning(
            "agent.layer=%r in OTEL_RESOURCE_ATTRIBUTES is not a layer (use one of %s); using %s",
            layer,
            ", ".join(c.LAYERS),
            DEFAULT_LAYER,
        )
        layer = DEFAULT_LAYER
    settings: dict[str, Any] = {
        "service_name": attrs.get(c.SERVICE_NAME) or _command_line_name() or UNKNOWN_SERVICE,
        "layer": layer,
    }
    version = attrs.get(c.SERVICE_VERSION) or attrs.get(c.AGENT_VERSION)
    if version:
        settings["version"] = version
    environment = attrs.get(c.DEPLOYMENT_ENVIRONMENT_NAME) or attrs.get(c.DEPLOYMENT_ENVIRONMENT)
    if environment:
        settings["environment"] = environment
    return settings


def configure_from_env() -> TracerProvider | None:
    """Set tracing up from the standard variables and make it the global provider.

    Returns the provider, or None when the variables turn tracing off, another global
    provider is already set, or the set-up failed (one warning; the process runs untraced).
    Idempotent: later calls return what the first returned. Never raises.

    A name derived from the command line is also put in ``OTEL_SERVICE_NAME`` (when unset),
    so the process's multiprocessing children (started with ``-c``) carry the same name.
    """
    global _done, _provider
    with _lock:
        if _done:
            return _provider
        _done = True
        try:
            _provider = _configure()
        except Exception as e:
            log.warning(
                "zero-code tracing set-up failed; the process runs untraced: %s: %s",
                type(e).__name__,
                e,
            )
            _provider = None
        return _provider


def _configure() -> TracerProvider | None:
    settings = settings_from_env(os.environ)
    if settings is None:
        return None
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        log.warning(
            "a global tracer provider is already set; the zero-code set-up leaves it alone "
            "(add harness_instrument.ConversationSpanProcessor to it to stamp its spans)"
        )
        return None
    derived = c.SERVICE_NAME not in resource_attributes(os.environ)
    if derived and settings["service_name"] != UNKNOWN_SERVICE:
        os.environ["OTEL_SERVICE_NAME"] = settings["service_name"]
    return harness_instrument.init_tracing(**settings, set_global=True, livekit=False)
