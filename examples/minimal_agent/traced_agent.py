"""The same agent with the tracing a team typically has already, and nothing of the harness:
an OpenTelemetry SDK TracerProvider exporting over OTLP/HTTP, configured by the standard
``OTEL_*`` variables, handed to livekit-agents.

    python examples/minimal_agent/traced_agent.py start
"""

from __future__ import annotations

from agent import server  # the agent of agent.py, unchanged
from livekit.agents import JobProcess, cli, telemetry
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup_tracing(proc: JobProcess) -> None:
    """In every job process: OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES are read by the SDK itself."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    telemetry.set_tracer_provider(provider)
    proc.userdata["tracer_provider"] = provider


server.setup_fnc = setup_tracing

if __name__ == "__main__":
    cli.run_app(server)
