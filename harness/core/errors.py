"""One root exception and its three kinds.

pytest reports :class:`InfrastructureError` as an *error* ("CI is broken") and
:class:`CallFailure` as a *failure* ("the agent regressed"). Keep that split: never raise
an InfrastructureError for something the agent under test did.
"""

from __future__ import annotations

from pathlib import Path


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class ScenarioError(HarnessError):
    """A scenario, preset or config file is invalid.

    Rendered as ``scenarios/x.yaml:12: turns[2].say: field required``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file:
            where = self.file if self.line is None else f"{self.file}:{self.line}"
            where += ": "
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.reason}"


class InfrastructureError(HarnessError):
    """The server, the agent process or the network failed: never the agent's quality."""


class CallFailure(HarnessError):
    """The agent under test misbehaved: it left, went silent, or broke an expectation."""

    def __init__(self, message: str, *, turn: int | None = None) -> None:
        self.turn = turn
        super().__init__(message)
