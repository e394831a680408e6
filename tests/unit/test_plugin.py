"""The pytest plugin as users see it (collection and options; no server needed)."""

import pytest

pytest_plugins = ["pytester"]


SCENARIO = "id: a\nagent: clinic\nturns:\n  - say: hi\n"


def write(pytester: pytest.Pytester, name: str, text: str) -> None:
    path = pytester.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_scenario_typo_is_a_collection_error_with_file_and_line(pytester: pytest.Pytester):
    write(pytester, "scenarios/x.scenario.yaml", "id: x\nturns:\n  - say: hi\n  - expect: {}\n")
    result = pytester.runpytest_subprocess("scenarios")
    result.stdout.fnmatch_lines(["*scenarios/x.scenario.yaml:4: turns[[]1[]].say: field required*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED  # collection errors stop the session


def test_calls_option_repeats_each_scenario(pytester: pytest.Pytester):
    write(pytester, "scenarios/a.scenario.yaml", SCENARIO)
    result = pytester.runpytest_subprocess("scenarios", "--collect-only", "-q", "--calls", "3")
    result.stdout.fnmatch_lines(
        ["*a.scenario.yaml::a[[]1[]]", "*a.scenario.yaml::a[[]2[]]", "*a.scenario.yaml::a[[]3[]]"]
    )


def test_options_are_one_group_and_have_ini_twins(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        [
            "*synthetic calls against LiveKit voice agents:",
            "*--livekit-url=LIVEKIT_URL*",
            "*--agent-cmd=AGENT_CMD*",
            "*--concurrency=CONCURRENCY*",
            "*--collector=ADDRESS*",
        ]
    )
    out = result.stdout.str()
    assert "harness_concurrency" in out and "harness_collector" in out
    assert "harness_scenarios" in out and "**/*.scenario.yaml" in out  # the default, documented


def test_bad_option_value_is_a_usage_error(pytester: pytest.Pytester):
    write(pytester, "scenarios/a.scenario.yaml", SCENARIO)
    pytester.makeini("[pytest]\nharness_calls = many\n")
    result = pytester.runpytest_subprocess("scenarios", "--collect-only")
    result.stderr.fnmatch_lines(["*--calls='many': expected int*"])


def test_an_xdist_worker_gets_the_run_id_its_own_logs_and_a_share(pytester: pytest.Pytester):
    from harness.pytest_plugin import session_config

    config = pytester.parseconfig("--concurrency", "4")
    config.workerinput = {"workerid": "gw1", "workercount": 2, "harness_run_id": "run-1"}
    cfg = session_config(config)
    assert (cfg.run_id, cfg.worker, cfg.concurrency) == ("run-1", "gw1", 2)
    assert cfg.log_path("livekit-server").name == "livekit-server.gw1.log"
