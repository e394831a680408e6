"""pytest wiring: options, scenario collection, per-call items, the session's calls.

No logic lives here: it turns options into a :class:`harness.session.config.SessionConfig`,
scenario files into items, and outcomes into pytest reports. Infrastructure problems
are raised in an item's setup (reported as errors); agent misbehaviour in its call
(reported as failures).

Installing the package loads this plugin into every pytest run of the environment, so
it collects only the files that the ini option ``harness_scenarios`` names: glob
patterns relative to the rootdir, where ``**`` matches any number of directories (see
:mod:`harness.scenario.discover`). The default is ``**/*.scenario.yaml`` and ``**/*.scenario.yml``;
a project whose scenarios are plain ``.yaml`` files says so, e.g. in pyproject.toml::

    [tool.pytest.ini_options]
    harness_scenarios = ["scenarios/**/*.yaml"]

pytest-xdist's hooks are optional here: nothing breaks where xdist is absent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import HarnessError, InfrastructureError, ScenarioError

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
    (
        "collector",
        "harness_collector",
        str,
        None,
        "listen address of the trace receiver, HOST:PORT, :PORT or PORT (default: a free "
        "loopback port), for an agent started outside the harness to export to",
    ),
]
_METAVARS = {"collector": "ADDRESS"}

# Gate settings: not call settings, so not part of SessionConfig.
_GATE_OPTIONS: list[tuple[str, str, str]] = [
    ("gates", "harness_gates", "gates file (default: harness.yaml, pyproject, built-ins)"),
    ("baseline", "harness_baseline", "baseline file from `harness baseline save`"),
]

# Load test settings (the harness_load fixture and marker): marker > command line > ini.
_LOAD_OPTIONS: list[tuple[str, str, str]] = [
    ("ramp", "harness_load_ramp", "load test: concurrency levels, e.g. 1,2,4,8,16"),
    ("step_duration", "harness_load_step_duration", "load test: how long a level lasts, e.g. 2m"),
    ("knee_factor", "harness_load_knee_factor", "load test: knee when p90 exceeds this x step 1's"),
]

_SESSION = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "synthetic calls against LiveKit voice agents")
    for name, ini, typ, default, help_ in _OPTIONS:
        flag = "--" + name.replace("_", "-")
        metavar = _METAVARS.get(name, name.upper())
        group.addoption(
            flag, dest=f"harness_{name}", type=typ, default=None, metavar=metavar, help=help_
        )
        parser.addini(ini, help_, default=None if default is None else str(default))
    for name, ini, help_ in _GATE_OPTIONS:
        group.addoption(f"--{name}", dest=f"harness_{name}", metavar="FILE", help=help_)
        parser.addini(ini, help_, default=None)
    for name, ini, help_ in _LOAD_OPTIONS:
        flag = "--load-" + name.replace("_", "-")
        metavar = {"ramp": "LEVELS", "step_duration": "DURATION"}.get(name, "FACTOR")
        group.addoption(
            flag, dest=f"harness_load_{name}", default=None, metavar=metavar, help=help_
        )
        parser.addini(ini, help_, default=None)
    from harness.scenario.discover import DEFAULT_SCENARIO_GLOBS

    parser.addini(
        "harness_scenarios",
        "glob patterns of scenario files, relative to the rootdir; ** matches any number of "
        f"directories (default: {' '.join(DEFAULT_SCENARIO_GLOBS)})",
        type="linelist",
        default=list(DEFAULT_SCENARIO_GLOBS),
    )


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


def _agent_command(config: pytest.Config) -> tuple[str | None, str | None]:
    from harness.session.config import agent_command, remote_server_source

    remote = remote_server_source(
        config.getoption("harness_livekit_url"),
        config.getini("harness_livekit_url") or None,
        os.environ,
    )
    ini_cmd = config.getini("harness_agent_cmd") or None
    return agent_command(config.getoption("harness_agent_cmd"), ini_cmd, remote)


def session_config(config: pytest.Config):
    """The one place options become a :class:`harness.session.config.SessionConfig` (also called
    in each pytest-xdist worker)."""
    from harness.session.config import SessionConfig, parse_collector_address

    kw = {n: _setting(config, n, ini, t, d) for n, ini, t, d, _ in _OPTIONS}
    kw["artifacts"] = Path(kw["artifacts"])
    kw["agent_cmd"], _ = _agent_command(config)
    address = kw.pop("collector")
    if address is not None:
        cli = config.getoption("harness_collector") is not None
        where = "--collector" if cli else "harness_collector"
        try:
            kw["collector_host"], kw["collector_port"] = parse_collector_address(address)
        except ValueError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
    try:
        cfg = SessionConfig(**kw)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    worker = getattr(config, "workerinput", None)
    if worker is None:
        return cfg
    return cfg.for_xdist_worker(
        worker["workerid"], worker["workercount"], worker.get("harness_run_id", cfg.run_id)
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: needs the real LiveKit server and agent processes")
    config.addinivalue_line(
        "markers",
        "harness_load(ramp=[1, 2, 4], step_duration='30s', knee_factor=2.0, keep_going=False): "
        "settings of the harness_load fixture's load test (they win over --load-* and the ini)",
    )
    config.stash[_SESSION] = {
        "session": None,
        "schedule": None,
        "error": None,
        "outcomes": [],
        "gate_run": None,
        "verdicts": None,
        "load_tables": [],
    }
    cfg = session_config(config)  # bad option values are usage errors now, not at the first call
    if not hasattr(config, "workerinput"):
        from harness.session.config import collector_conflict

        workers = getattr(config.option, "numprocesses", None) or 0  # pytest-xdist's -n
        problem = collector_conflict(cfg.collector_port, workers)
        if problem is not None:
            raise pytest.UsageError(problem)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: the controller prints it
        return []
    _, notice = _agent_command(config)
    return [notice] if notice else []


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # pytest-xdist: one run id for all workers
    cfg = session_config(node.config)
    node.config.stash[_SESSION].setdefault("run_id", cfg.run_id)
    node.workerinput["harness_run_id"] = node.config.stash[_SESSION]["run_id"]


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    from harness.scenario.discover import is_scenario_file

    config = parent.config
    if is_scenario_file(file_path, config.rootpath, config.getini("harness_scenarios")):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        from harness.scenario.discover import shown_path
        from harness.scenario.model import load_scenario, resolve_agent_name

        cfg = session_config(self.config)
        shown = shown_path(self.path, cwd=Path.cwd(), rootdir=self.config.rootpath)
        try:
            scenario = load_scenario(self.path, shown_as=shown)
            resolve_agent_name(scenario, cfg.agent_name)  # no agent: a collection error
        except ScenarioError as exc:
            raise self.CollectError(str(exc)) from None
        calls = cfg.calls
        for repeat in range(1, calls + 1):
            name = scenario.id if calls == 1 else f"{scenario.id}[{repeat}]"
            yield ScenarioItem.from_parent(self, name=name, scenario=scenario, repeat=repeat)


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Any, repeat: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.repeat = repeat
        self.outcome: Any = None
        self.next_call: ScenarioItem | None = None  # the next call this process will run
        self.add_marker("e2e")

    def setup(self) -> None:
        error: InfrastructureError | None = None
        try:
            self._setup()
        except InfrastructureError as exc:
            error = exc
        if error is not None:  # failing in setup: pytest reports an ERROR, with the message only
            pytest.fail(f"{type(error).__name__}: {error}", pytrace=False)

    def _setup(self) -> None:
        schedule = _schedule(self.config)
        if hasattr(self.config, "workerinput"):
            # an xdist worker collects every item but runs only those it is handed: start
            # this call and the next one it holds, never the whole collection
            ahead = [self] + ([self.next_call] if self.next_call is not None else [])
        else:
            ahead = [i for i in self.session.items if isinstance(i, ScenarioItem)]
        schedule.ensure([(i.scenario, i.repeat) for i in ahead])
        self.outcome = schedule.outcome(self.scenario, self.repeat)
        self.config.stash[_SESSION]["outcomes"].append(self.outcome)
        self.user_properties.append(("conversation_id", self.outcome.conversation_id))
        self.user_properties.append(("artifacts", str(self.outcome.artifacts)))
        from harness.report import report_link

        self.user_properties.append(("report", report_link(self.outcome.artifacts)))
        for score in self.outcome.scores:  # JUnit XML properties
            self.user_properties.append((score_property_name(score), score.value))
        if self.outcome.verdict == "error":
            raise self.outcome.error

    def runtest(self) -> None:
        from harness.session.engine import session_failure

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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if isinstance(item, ScenarioItem):
        item.next_call = nextitem if isinstance(nextitem, ScenarioItem) else None


def _schedule(config: pytest.Config):
    from harness.session.engine import CallSession, Schedule

    state = config.stash[_SESSION]
    if state["error"] is not None:
        raise state["error"]
    if state["schedule"] is None:
        try:
            session = CallSession(session_config(config)).start()
        except InfrastructureError as exc:
            state["error"] = exc
            raise
        if session.export_notice:
            _say(config, f"harness: {session.export_notice}")
        state["session"] = session
        state["schedule"] = Schedule(session)
    return state["schedule"]


def _say(config: pytest.Config, line: str) -> None:
    """One line on the terminal now, in the middle of a test's setup (outside capture)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capman is None:
        reporter.write_line(line)
        return
    with capman.global_and_fixture_disabled():
        reporter.ensure_newline()
        reporter.write_line(line)


def score_property_name(score: Any) -> str:
    where = score.span or score.layer
    turn = f"[turn {score.turn}]" if score.turn is not None else ""
    return f"score.{score.name}" + (f".{where}" if where else "") + turn


def _gate_setting(config: pytest.Config, name: str, ini: str) -> str | None:
    return config.getoption(f"harness_{name}") or config.getini(ini) or None


_WORKER_OUTPUT = "harness"  # our key in a pytest-xdist worker's workeroutput


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:  # pytest-xdist controller
    output = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if output is not None:  # the worker placed calls
        _gate_run(node.config).add_worker_output(output)


def _gate_run(config: pytest.Config):
    from harness.session.gaterun import GateRun

    state = config.stash[_SESSION]
    if state["gate_run"] is None:
        state["gate_run"] = GateRun()
    return state["gate_run"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    state = config.stash[_SESSION]
    if state["session"] is None and state["gate_run"] is None:
        return  # no call was placed, here or in a worker: import nothing
    from harness.gates.scoring import gates_failed
    from harness.session.gaterun import GateRun
    from harness.session.summary import CallRow

    rows = [CallRow.from_outcome(o) for o in state["outcomes"]]
    call_session = state["session"]
    local = call_session.scores.store if call_session is not None else None
    traces = call_session.trace_report_now() if call_session is not None else None
    if hasattr(config, "workerinput"):  # an xdist worker: the controller gates
        if local is not None:
            config.workeroutput[_WORKER_OUTPUT] = GateRun.worker_output(local, rows, traces)
        return
    run = _gate_run(config)
    if local is not None:
        run.add(local, rows, traces)
    if not run.rows:
        return
    verdicts = run.verdicts(
        _gate_setting(config, "gates", "harness_gates"),
        _gate_setting(config, "baseline", "harness_baseline"),
        config.rootpath,
    )
    state["verdicts"] = verdicts
    from harness.report import report_at_end

    scenarios = {i.scenario.id: i.scenario for i in session.items if isinstance(i, ScenarioItem)}
    state["report"] = report_at_end(
        _run_dir(config), store=run.store, verdicts=verdicts, scenarios=scenarios.values()
    )
    if gates_failed(verdicts) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a deploy gate: fail the session


def _run_dir(config: pytest.Config) -> Path:
    """The session's run directory (under pytest-xdist, the one its workers share)."""
    state = config.stash[_SESSION]
    if state["session"] is not None:
        return state["session"].config.run_dir
    cfg = session_config(config)
    return cfg.artifacts / state.get("run_id", cfg.run_id)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash[_SESSION]
    run = state["gate_run"]
    if run is None or not run.rows:
        for table in state.get("load_tables", []):
            terminalreporter.section("harness load")
            terminalreporter.write_line(table)
        return
    from harness.gates.scoring import gates_report
    from harness.session.summary import call_table

    terminalreporter.section("harness calls")
    terminalreporter.write_line(call_table(run.rows))
    for line in run.trace_lines():
        terminalreporter.write_line(f"traces: {line}")
    if state["verdicts"] is not None:
        terminalreporter.section("harness gates")
        terminalreporter.write_line(gates_report(state["verdicts"]))
    if state.get("report"):
        terminalreporter.write_line(state["report"])
    for table in state.get("load_tables", []):
        terminalreporter.section("harness load")
        terminalreporter.write_line(table)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_SESSION, None)
    if state and state["session"] is not None:
        state["session"].close()
        state["session"] = None


@pytest.fixture(scope="session")
def harness_session(request: pytest.FixtureRequest):
    """The session's :class:`harness.session.engine.CallSession` (server, agent, collector)."""
    return _schedule(request.config).session


@pytest.fixture
def harness_load(request: pytest.FixtureRequest):
    """``harness_load(paths) -> harness.load.LoadOutcome``: the scenarios under ``paths`` as
    a load test (``harness load``), with the ``harness_load`` marker's settings, else
    ``--load-ramp``/``--load-step-duration``/``--load-knee-factor``, else their ini twins.
    Keywords given to the call win over all of them. Each call is a run of its own."""
    import dataclasses

    from harness.load import load, resolve_load_config
    from harness.session.config import new_run_id

    config = request.config
    marker = request.node.get_closest_marker("harness_load")
    cli = {n: config.getoption(f"harness_load_{n}") for n, _, _ in _LOAD_OPTIONS}
    ini = {n: config.getini(i) or None for n, i, _ in _LOAD_OPTIONS}

    def run(paths: Any, **overrides: Any):
        try:
            settings = resolve_load_config(overrides, marker.kwargs if marker else {}, cli, ini)
        except ScenarioError as exc:
            raise pytest.UsageError(f"harness_load: {exc}") from None
        cfg = dataclasses.replace(session_config(config), run_id=new_run_id())
        listed = [str(paths)] if isinstance(paths, (str, os.PathLike)) else [str(p) for p in paths]
        out = load(
            cfg,
            listed,
            settings,
            gates_file=_gate_setting(config, "gates", "harness_gates"),
            progress=lambda line: _say(config, f"harness load: {line}"),
        )
        config.stash[_SESSION]["load_tables"].append(f"{out.table}\n{out.report}")
        return out

    return run
