"""The plugin as a guest: it loads into every pytest run of the environment.

Other projects must pass unchanged, with and without pytest-xdist; only files named by
``harness_scenarios`` are scenarios; paths resolve from any working directory; the
settings fail early and clearly. Every run here is ``--collect-only`` or has no scenario
items to run: no call is placed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scenario.discover import (
    DEFAULT_SCENARIO_GLOBS,
    glob_matches,
    is_scenario_file,
    shown_path,
)

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "id: {id}\nagent: clinic\nturns:\n  - say: hi\n"
CI_CONFIG = "stages: [build, test]\nbuild:\n  script: make\n"
NOTICE = (
    "harness: not starting the ini's harness_agent_cmd: a remote LiveKit server was given "
    "(--livekit-url); pass --agent-cmd to start one"
)


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch):
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)  # load our plugin
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.delenv("LIVEKIT_URL", raising=False)


def write(base: Path, name: str, text: str) -> Path:
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a new process, as a user runs it: the plugin comes from its entry point."""
    if "-n" not in args:
        return pytester.runpytest_inprocess(*args)
    return pytester.runpytest_subprocess(*args, timeout=120)


def unrelated_project(pytester: pytest.Pytester) -> None:
    write(pytester.path, "test_plain.py", "def test_one():\n    assert 1\n")
    write(pytester.path, "scenarios/ci.yaml", CI_CONFIG)


def scenario_project(pytester: pytest.Pytester, *patterns: str) -> None:
    pytester.makeini("[pytest]\nharness_scenarios =\n" + "".join(f"    {p}\n" for p in patterns))


# --- an unrelated project ------------------------------------------------------------------


@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_an_unrelated_project_passes_and_its_yaml_is_not_collected(pytester, xdist):
    unrelated_project(pytester)
    result = run(pytester, *xdist)
    result.stdout.fnmatch_lines(["plugins: *livekit-call-harness*"])  # the plugin is loaded
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    collected = run(pytester, *xdist, "--collect-only", "-q")
    assert collected.ret == pytest.ExitCode.OK
    assert "test_plain.py::test_one" in collected.stdout.str()
    assert "ci.yaml" not in collected.stdout.str() + collected.stderr.str()


def test_the_default_collects_only_files_that_say_they_are_scenarios(pytester):
    unrelated_project(pytester)
    write(pytester.path, "suite/booking.scenario.yaml", SCENARIO.format(id="booking"))
    write(pytester.path, "hours.scenario.yml", SCENARIO.format(id="hours"))
    result = run(pytester, "--collect-only", "-q", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines_random(
        ["suite/booking.scenario.yaml::booking", "hours.scenario.yml::hours"]
    )
    assert "ci.yaml" not in result.stdout.str()


# --- a project with harness_scenarios ------------------------------------------------------


@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_configured_globs_collect_the_projects_scenarios(pytester, xdist):
    scenario_project(pytester, "scenarios/**/*.yaml")
    write(pytester.path, "scenarios/a.yaml", SCENARIO.format(id="a"))
    write(pytester.path, "scenarios/deep/er/b.yaml", SCENARIO.format(id="b"))
    write(pytester.path, "config/c.yaml", CI_CONFIG)  # not a scenario: not matched
    write(pytester.path, "test_plain.py", "def test_one():\n    assert 1\n")
    if "-n" not in xdist:  # (--collect-only never distributes: one run says it all)
        result = run(pytester, *xdist, "--collect-only", "-q")
        assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
        result.stdout.fnmatch_lines_random(
            ["scenarios/a.yaml::a", "scenarios/deep/er/b.yaml::b", "test_plain.py::test_one"]
        )
        assert "c.yaml" not in result.stdout.str()
    # a real session: (each worker) collects and loads the scenarios, then deselects them
    ran = run(pytester, *xdist, "-m", "not e2e")
    assert ran.ret == pytest.ExitCode.OK, ran.stdout.str() + ran.stderr.str()
    if "-n" in xdist:  # workers deselect on their own: the controller sees the one test
        ran.assert_outcomes(passed=1)
        ran.stdout.fnmatch_lines(["2 workers [[]1 item[]]"])
    else:
        ran.assert_outcomes(passed=1, deselected=2)


def test_from_a_subdirectory_scenarios_load_from_the_right_file(pytester, monkeypatch):
    scenario_project(pytester, "suite/scenarios/*.yaml", "other/*.yaml")
    write(pytester.path, "suite/scenarios/a.yaml", SCENARIO.format(id="a"))
    write(pytester.path, "other/c.yaml", SCENARIO.format(id="c"))
    monkeypatch.chdir(pytester.path / "suite")  # the rootdir is one level up, by its ini
    result = run(pytester, "--collect-only", "-q", "-p", "no:xdist", "scenarios", "../other")
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, out
    assert "No such file" not in out
    result.stdout.fnmatch_lines_random(["*scenarios/a.yaml::a", "*other/c.yaml::c"])


def test_from_a_subdirectory_errors_name_the_file_by_its_shortest_true_path(pytester, monkeypatch):
    scenario_project(pytester, "suite/scenarios/*.yaml", "other/*.yaml")
    write(pytester.path, "suite/scenarios/bad.yaml", "id: bad\nagent: x\nturns:\n  - sya: hi\n")
    write(pytester.path, "other/worse.yaml", "id: worse\nagent: x\nturns: []\n")
    monkeypatch.chdir(pytester.path / "suite")
    result = run(pytester, "--collect-only", "-p", "no:xdist", "scenarios", "../other")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines_random(
        [
            "*scenarios/bad.yaml:4: turns[[]0[]].sya: unknown key*",  # from the cwd
            "*other/worse.yaml:3: turns: *",  # from the rootdir: shorter than ../other/...
        ]
    )
    assert "suite/scenarios/bad.yaml:" not in result.stdout.str()
    assert (pytester.path / "suite" / "scenarios/bad.yaml").is_file()
    assert (pytester.path / "other/worse.yaml").is_file()


# --- the scenario's agent ------------------------------------------------------------------


def test_a_scenario_without_agent_needs_agent_name(pytester):
    scenario_project(pytester, "scenarios/*.yaml")
    write(pytester.path, "scenarios/anon.yaml", "id: anon\nturns:\n  - say: hi\n")
    result = run(pytester, "--collect-only", "-q", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error, before any call
    result.stdout.fnmatch_lines(
        [
            "*scenarios/anon.yaml: agent: not set; add `agent: <your agent_name>` to the "
            "scenario or pass --agent-name*"
        ]
    )
    named = run(pytester, "--collect-only", "-q", "-p", "no:xdist", "--agent-name", "x")
    assert named.ret == pytest.ExitCode.OK, named.stdout.str()
    named.stdout.fnmatch_lines(["scenarios/anon.yaml::anon"])


# --- --collector ---------------------------------------------------------------------------


def test_collector_address_reaches_the_session_config(pytester):
    from harness.pytest_plugin import session_config

    cfg = session_config(pytester.parseconfig("--collector", ":4999"))
    assert (cfg.collector_host, cfg.collector_port) == ("127.0.0.1", 4999)
    pytester.makeini("[pytest]\nharness_collector = [::1]:4318\n")
    cfg = session_config(pytester.parseconfig())
    assert (cfg.collector_host, cfg.collector_port) == ("::1", 4318)
    cfg = session_config(pytester.parseconfig("--collector", "0.0.0.0:4317"))  # cli > ini
    assert (cfg.collector_host, cfg.collector_port) == ("0.0.0.0", 4317)


def test_a_good_collector_address_runs(pytester):
    unrelated_project(pytester)
    result = run(pytester, "--collect-only", "-q", "-p", "no:xdist", "--collector", ":4999")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()


def test_a_bad_collector_address_is_a_usage_error_naming_the_option(pytester):
    unrelated_project(pytester)
    result = run(pytester, "--collect-only", "-p", "no:xdist", "--collector", "nonsense")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--collector: 'nonsense' is not a listen address: write HOST:PORT, :PORT or PORT*"]
    )
    pytester.makeini("[pytest]\nharness_collector = localhost:http\n")
    result = run(pytester, "--collect-only", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*harness_collector: 'localhost:http' is not a listen address*"])


def test_a_fixed_collector_port_and_several_xdist_workers_are_refused(pytester):
    unrelated_project(pytester)
    result = run(pytester, "-n", "2", "--collector", ":4999")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--collector fixes port 4999, but each of the 2 pytest-xdist*"])


# --- the agent command with a remote server ------------------------------------------------

INI_AGENT = "[pytest]\nharness_agent_cmd = python -m my_agent start\n"


def test_with_a_remote_server_the_ini_agent_cmd_is_not_started(pytester, monkeypatch):
    from harness.pytest_plugin import session_config

    pytester.makeini(INI_AGENT)
    assert session_config(pytester.parseconfig()).agent_cmd == "python -m my_agent start"
    remote = ("--livekit-url", "ws://127.0.0.1:1")
    assert session_config(pytester.parseconfig(*remote)).agent_cmd is None
    cli = session_config(pytester.parseconfig(*remote, "--agent-cmd", "python -m other"))
    assert cli.agent_cmd == "python -m other"
    monkeypatch.setenv("LIVEKIT_URL", "wss://example.invalid")
    assert session_config(pytester.parseconfig()).agent_cmd is None


@pytest.mark.parametrize("xdist", [["-p", "no:xdist"], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_the_ignored_ini_agent_cmd_is_said_once_at_start(pytester, xdist):
    pytester.makeini(INI_AGENT)
    write(pytester.path, "test_plain.py", "def test_one():\n    assert 1\n")
    result = run(pytester, *xdist, "--livekit-url", "ws://127.0.0.1:1")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    assert result.stdout.str().count(NOTICE) == 1
    result.stdout.fnmatch_lines(["*test session starts*", NOTICE, "plugins: *"])  # the header
    if "-n" not in xdist:
        local = run(pytester, *xdist)  # a local server: the ini's command stands, no notice
        assert "not starting" not in local.stdout.str()


def test_the_notice_shows_under_collect_only(pytester):
    pytester.makeini(INI_AGENT)
    result = run(pytester, "--collect-only", "-p", "no:xdist", "--livekit-url", "ws://127.0.0.1:1")
    result.stdout.fnmatch_lines([NOTICE])


# --- the globs, as a library ---------------------------------------------------------------

SEGMENT = st.text(alphabet="abcxyz._-", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)
DIRS = st.lists(SEGMENT, max_size=4)


@given(DIRS, SEGMENT)
def test_double_star_matches_any_number_of_directories_including_none(dirs, stem):
    path = "/".join([*dirs, f"{stem}.scenario.yaml"])
    assert glob_matches(path, DEFAULT_SCENARIO_GLOBS)
    assert glob_matches("/".join(["scenarios", *dirs, f"{stem}.yaml"]), ["scenarios/**/*.yaml"])
    assert not glob_matches("/".join([*dirs, f"{stem}.yaml"]), DEFAULT_SCENARIO_GLOBS)


@given(st.lists(SEGMENT, min_size=1, max_size=4), SEGMENT)
def test_a_single_star_stays_within_one_segment(dirs, stem):
    path = "/".join(["examples", *dirs, "scenarios", f"{stem}.yaml"])
    assert glob_matches(path, ["examples/*/scenarios/*.yaml"]) == (len(dirs) == 1)
    assert not glob_matches(f"scenarios/{'/'.join(dirs)}/{stem}.yaml", ["scenarios/*.yaml"])


def test_this_projects_own_globs_collect_its_scenarios_and_not_the_e2e_suites():
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    globs = ini["harness_scenarios"]
    yes = [*ROOT.glob("scenarios/**/*.yaml"), ROOT / "examples/clinic/scenarios/x.yaml"]
    no = [*ROOT.glob("tests/**/*.yaml"), ROOT / "examples/clinic/a/scenarios/x.yaml"]
    assert ROOT / "scenarios/smoke/greeting.yaml" in yes
    assert ROOT / "tests/e2e/suites/quick_hours.yaml" in no
    assert all(is_scenario_file(p, ROOT, globs) for p in yes)
    assert not any(is_scenario_file(p, ROOT, globs) for p in no)
    assert not is_scenario_file(ROOT / "scenarios/notes.md", ROOT, globs)


@given(DIRS, DIRS, DIRS)
def test_a_shown_path_names_the_same_file_and_is_never_the_longer_form(common, to_cwd, to_file):
    root = Path("/r", *common)
    cwd, path = root.joinpath(*to_cwd), root.joinpath(*to_file, "x.yaml")
    shown = shown_path(path, cwd=cwd, rootdir=root)
    from_cwd, from_root = (cwd / shown).resolve(), (root / shown).resolve()
    assert path.resolve() in (from_cwd, from_root)
    assert len(str(shown)) <= len(str(path.relative_to(root)))
    if path.is_relative_to(cwd):
        assert shown == path.relative_to(cwd)
