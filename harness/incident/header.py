"""What a fixture says about where it came from: its header comment and ``incident:``.

The header names the classification and its rationale, the source trace and
conversation (redacted) with the call's time, each failed check with its value and detail
(redacted), the checks no scenario field asserts, what was redacted (kinds and counts,
never values), and where the caller's audio was cut from (the recording's name redacted)
with the estimated line conditions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.incident.build import OFFLINE_VOICE
from harness.incident.classify import Classification, Finding
from harness.incident.estimate import ConditionsEstimate
from harness.incident.recording import Placement
from harness.incident.redact import KINDS, Redactor

__all__ = ["Provenance", "header_lines", "incident_mapping", "iso", "redaction_summary"]


def iso(dt: datetime) -> str:
    """A UTC time to the second, as ``2025-11-13T02:13:20Z``."""
    return dt.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def redaction_summary(counts: Mapping[str, int]) -> str:
    """``PHONE x1, NAME x2`` in the kinds' order, or ``nothing``."""
    parts = [f"{k} x{counts[k]}" for k in KINDS if counts.get(k)]
    return ", ".join(parts) if parts else "nothing"


@dataclass(frozen=True)
class Provenance:
    """Where a fixture came from."""

    incident_id: str
    trace_id: str | None
    conversation_id: str
    """As written: redacted."""
    occurred: datetime
    imported: datetime


def incident_mapping(src: Provenance, classification: Classification) -> dict[str, Any]:
    """The fixture's top-level ``incident:`` mapping."""
    return {
        "id": src.incident_id,
        "source_trace_id": src.trace_id,
        "conversation_id": src.conversation_id,
        "imported_at": iso(src.imported),
        "occurred_at": iso(src.occurred),
        "severity": classification.severity,
        "failing_layer": classification.failing_layer,
        "failed_evaluators": list(classification.failed_evaluators),
    }


def header_lines(
    src: Provenance,
    classification: Classification,
    findings: Sequence[Finding],
    unasserted: Sequence[str],
    redactor: Redactor,
    redacted: Mapping[str, int] | None,
    placement: Placement | None,
    estimate: ConditionsEstimate | None,
) -> list[str]:
    """The header comment's lines (see the module); ``redacted`` is None when redaction
    was off. Details and names are redacted here without being counted."""
    header = [
        f"Incident {src.incident_id}: {classification.severity}, failing layer "
        f"{classification.failing_layer} (rule {classification.rule}).",
        classification.rationale,
        f"Source: trace {src.trace_id or 'unknown'}, conversation {src.conversation_id}, "
        f"{iso(src.occurred)}.",
    ]
    if findings:
        header.append("Failed on the production call:")
        for f in findings:
            detail = f.detail and redactor.redact(f.detail, count=False, speaker="agent").text
            header.append(f"  - {f.describe()}" + (f": {detail}" if detail else ""))
    else:
        header.append("No evaluator failed on the production call; imported as reported.")
    if unasserted:
        header.append(f"Not asserted by any scenario field: {', '.join(unasserted)}.")
    if redacted is not None:
        header.append(
            f"Redacted before writing: {redaction_summary(redacted)}"
            + ("; values in `say` are synthetic replay values." if redacted else ".")
        )
    else:
        header.append("PII REDACTION WAS OFF: this file and its audio may hold personal data.")
    if placement is not None and estimate is not None:
        rec = placement.recording
        rec_name = redactor.redact(rec.path.name, count=False, speaker="system").text
        header.append(
            f"Caller audio: cut from {rec_name} (channel {rec.caller_channel} of "
            f"{rec.channels}{placement.alignment})."
        )
        header.append(f"Estimated caller conditions: {estimate.describe()}.")
    else:
        header.append(f"No recording: caller turns use the offline voice {OFFLINE_VOICE}.")
    return header
