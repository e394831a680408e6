"""Incident to regression test: a failed production call becomes a scenario fixture.

    from harness.incident import import_incident, from_run

    result = import_incident(Path("export.jsonl"), recording=Path("call.wav"))
    print(result.describe())          # what was written, the classification, the redactions

The fixture (``scenarios/incidents/<ID>.yaml``) replays the caller's turns, recorded where
the recording allows, with production's timing; the evaluators that failed become its
assertions; PII is redacted before anything is written. See ``docs/incidents.md``.
"""

from harness.incident.classify import (
    LAYERS,
    SEVERITIES,
    Check,
    Classification,
    Finding,
    IncidentSignals,
    Rule,
    RuleTable,
    classify,
    find_failures,
    load_rules,
)
from harness.incident.errors import IncidentError
from harness.incident.estimate import ConditionsEstimate, estimate_conditions, read_recording
from harness.incident.fixture import IncidentExpect, IncidentInfo, check_fixture
from harness.incident.importer import (
    OFFLINE_VOICE,
    ImportResult,
    find_fixture,
    from_run,
    import_incident,
)
from harness.incident.redact import (
    KINDS,
    SYNTHETIC,
    PiiMatch,
    Redacted,
    RedactionConfig,
    Redactor,
    find_pii,
    redact_text,
)

__all__ = [
    "KINDS",
    "LAYERS",
    "OFFLINE_VOICE",
    "SEVERITIES",
    "SYNTHETIC",
    "Check",
    "Classification",
    "ConditionsEstimate",
    "Finding",
    "ImportResult",
    "IncidentError",
    "IncidentExpect",
    "IncidentInfo",
    "IncidentSignals",
    "PiiMatch",
    "Redacted",
    "RedactionConfig",
    "Redactor",
    "Rule",
    "RuleTable",
    "check_fixture",
    "classify",
    "estimate_conditions",
    "find_failures",
    "find_fixture",
    "find_pii",
    "from_run",
    "import_incident",
    "load_rules",
    "read_recording",
    "redact_text",
]
