"""The one error an incident import raises on purpose."""

from __future__ import annotations

from harness.core.errors import ScenarioError


class IncidentError(ScenarioError):
    """A trace, recording or run directory that cannot become a regression fixture.

    Rendered like every :class:`ScenarioError`: ``prod.jsonl:7: not valid JSON (...)``.
    Nothing has been written when it is raised.
    """
