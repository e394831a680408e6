"""pytest wiring: options, scenario collection, per-call items, the session's calls.

No logic lives here: it turns options into a :class:`harness.engine.SessionConfig`,
scenario files into items, and outcomes into pytest reports. Infrastructure problems
are raised in an item's setup (reported as errors); agent misbehaviour in its call
(reported as failures).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError, InfrastructureError, ScenarioError

_OPTIONS: list[tuple[str, str, type, Any, str]] = [
    # (name, ini name, type, default, help)
    (
        "livekit_url",
        "harness_livekit_url",
        str,
        None,
        "LiveKit server URL (default: LIVEKIT_URL, else a local livekit-server --dev)",
    ),
    (
        "agent_name",
        "harness_agent_name",
        str,
        None,
        "dispatch this agent name instead of each scenario's `agent`",
    ),
    (
        "agent_cmd",
        "harness_agent_cmd",
        str,
        None,
        "command that starts an agent worker for the session (given the server's credentials)",
    ),
    ("calls", "harness_calls", int, 1, "repeat each scenario N times"),
    ("concurrency", "harness_concurrency", int, 1, "run up to K calls at once"),
    ("artifacts", "harness_artifacts", str, ".harness/runs", "directory for per-call artifacts"),
]

_SESSION = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "synthetic calls against LiveKit voice agents")
    for name, ini, typ, default, help_ in _OPTIONS:
        flag = "--" + name.replace("_", "-")
        group.addoption(
            flag, dest=f"harness_{name}", type=typ, default=None, metavar=name.upper(), help=help_
        )
        parser.addini(ini, help_, default=None if default is None else str(default))


def _setting(config: pytest.Config, name: str, ini: str, typ: type, default: Any) -> Any:
    value = config.getoption(f"harness_{name}")
    if value is None:
        value = config.getini(ini) or None
    if value is None:
        return default
    try:
        return typ(value)
    except ValueError:
        flag = "--" + name.replace("_", "-")
        raise pytest.UsageError(f"{flag}={value!r}: expected {typ.__name__}") from None


def session_config(config: pytest.Config):
    from harness.config import SessionConfig

    kw = {n: _setting(config, n, ini, t, d) for n, ini, t, d, _ in _OPTIONS}
    kw["artifacts"] = Path(kw["artifacts"])
    run_id = getattr(config, "workerinput", {}).get("harness_run_id")
    if run_id:
        kw["run_id"] = run_id
    try:
        return SessionConfig(**kw)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the real LiveKit server and agent processes")
    config.stash[_SESSION] = {"session": None, "schedule": None, "error": None, "outcomes": []}
    session_config(config)  # bad option values are usage errors now, not at the first call


def pytest_configure_node(node: Any) -> None:  # pytest-xdist: one run id for all workers
    cfg = session_config(node.config)
    node.config.stash[_SESSION].setdefault("run_id", cfg.run_id)
    node.workerinput["harness_run_id"] = node.config.stash[_SESSION]["run_id"]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix in (".yaml", ".yml") and "scenarios" in file_path.parts:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        from harness.scenario import load_scenario

        try:
            scenario = load_scenario(self.path.relative_to(self.config.rootpath))
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        calls = session_config(self.config).calls
        for repeat in range(1, calls + 1):
            name = scenario.id if calls == 1 else f"{scenario.id}[{repeat}]"
            yield ScenarioItem.from_parent(self, name=name, scenario=scenario, repeat=repeat)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Any, repeat: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.repeat = repeat
        self.outcome: Any = None
        self.add_marker("e2e")

    def setup(self) -> None:
        schedule = _schedule(self.config)
        schedule.ensure(
            [(i.scenario, i.repeat) for i in self.session.items if isinstance(i, ScenarioItem)]
        )
        self.outcome = schedule.outcome(self.scenario, self.repeat)
        self.config.stash[_SESSION]["outcomes"].append(self.outcome)
        self.user_properties.append(("conversation_id", self.outcome.conversation_id))
        self.user_properties.append(("artifacts", str(self.outcome.artifacts)))
        if self.outcome.verdict == "error":
            raise self.outcome.error

    def runtest(self) -> None:
        from harness.engine import session_failure

        err = session_failure(self.outcome)
        if err is not None:
            raise err

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        if isinstance(excinfo.value, HarnessError):
            where = f"\nartifacts: {self.outcome.artifacts}" if self.outcome else ""
            return f"{excinfo.value}{where}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        line = self.scenario.line_of("id")
        return self.path, (line - 1 if line else None), f"scenario {self.scenario.id}"


def _schedule(config: pytest.Config):
    from harness.engine import CallSession, Schedule

    state = config.stash[_SESSION]
    if state["error"] is not None:
        raise state["error"]
    if state["schedule"] is None:
        try:
            session = CallSession(session_config(config)).start()
        except InfrastructureError as exc:
            state["error"] = exc
            raise
        state["session"] = session
        state["schedule"] = Schedule(session)
    return state["schedule"]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    outcomes = config.stash[_SESSION]["outcomes"]
    if outcomes:
        from harness.summary import call_table

        terminalreporter.section("harness calls")
        terminalreporter.write_line(call_table(outcomes))


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state and state["session"] is not None:
        state["session"].close()
        state["session"] = None


@pytest.fixture(scope="session")
def harness_session(request: pytest.FixtureRequest):
    """The session's :class:`harness.engine.CallSession` (server, agent, collector)."""
    return _schedule(request.config).session
