"""What an import wrote and found: :class:`ImportResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.incident.classify import Classification
from harness.incident.header import redaction_summary

__all__ = ["ImportResult"]


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote and found. ``redactions`` counts by kind, never values."""

    incident_id: str
    scenario_path: Path
    audio_paths: tuple[Path, ...]
    classification: Classification
    redactions: Mapping[str, int]
    warnings: tuple[str, ...]
    source_trace_id: str | None
    conversation_id: str
    """The conversation id as written in the fixture (redacted)."""
    text: str = field(repr=False)
    """The fixture's YAML text."""

    @property
    def severity(self) -> str:
        return self.classification.severity

    @property
    def failing_layer(self) -> str:
        return self.classification.failing_layer

    @property
    def failed_evaluators(self) -> tuple[str, ...]:
        return self.classification.failed_evaluators

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (for ``--json`` output): paths, classification, counts."""
        cl = self.classification
        return {
            "incident_id": self.incident_id,
            "scenario": str(self.scenario_path),
            "audio": [str(p) for p in self.audio_paths],
            "severity": cl.severity,
            "failing_layer": cl.failing_layer,
            "rule": cl.rule,
            "failed_evaluators": list(cl.failed_evaluators),
            "findings": [f.describe() for f in cl.findings],
            "redactions": dict(self.redactions),
            "warnings": list(self.warnings),
            "source_trace_id": self.source_trace_id,
            "conversation_id": self.conversation_id,
        }

    def describe(self) -> str:
        """A few lines for a terminal: what was written, the classification, the redactions."""
        cl = self.classification
        lines = [
            f"incident {self.incident_id}: {cl.severity}, {cl.failing_layer} ({cl.rule})",
            f"  scenario: {self.scenario_path}",
        ]
        if self.audio_paths:
            lines.append(
                f"  audio:    {len(self.audio_paths)} recorded turn(s) in "
                f"{self.audio_paths[0].parent}"
            )
        failed = ", ".join(self.failed_evaluators) or "none"
        lines.append(f"  failed:   {failed}")
        lines.append(f"  redacted: {redaction_summary(self.redactions)}")
        lines.extend(f"  warning:  {w}" for w in self.warnings)
        return "\n".join(lines)
