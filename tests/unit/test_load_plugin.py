"""The load test as pytest users see it: the harness_load fixture, its marker and options
(no server: settings are checked before any call is placed)."""

import pytest

pytest_plugins = ["pytester"]


def test_load_options_are_in_the_harness_group_with_ini_twins(pytester: pytest.Pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(
        [
            "*synthetic calls against LiveKit voice agents:",
            "*--load-ramp=LEVELS*",
            "*--load-step-duration=DURATION*",
            "*--load-knee-factor=FACTOR*",
        ]
    )
    out = result.stdout.str()
    assert "harness_load_ramp" in out and "harness_load_step_duration" in out
    markers = pytester.runpytest_subprocess("--markers").stdout.str()
    assert "@pytest.mark.harness_load(ramp=[1, 2, 4], step_duration='30s'" in markers


def test_a_bad_marker_setting_fails_before_any_call(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_capacity="""
        import pytest

        @pytest.mark.harness_load(ramp="4,2", step_duration="10s")
        def test_capacity(harness_load):
            harness_load("scenarios")
        """
    )
    result = pytester.runpytest_subprocess("test_capacity.py", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(
        ["*UsageError: harness_load: ramp '4,2': the levels must increase*"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "started livekit-server" not in result.stdout.str()


def test_the_marker_wins_over_the_command_line(pytester: pytest.Pytester):
    """--load-ramp is bad, but the marker gives a ramp of its own: the bad one is never
    read; the bad --load-knee-factor the marker does not override is."""
    pytester.makepyfile(
        test_capacity="""
        import pytest

        @pytest.mark.harness_load(ramp=[1, 2])
        def test_capacity(harness_load):
            harness_load("scenarios")
        """
    )
    result = pytester.runpytest_subprocess(
        "test_capacity.py", "--load-ramp", "x", "--load-knee-factor", "0.5"
    )
    result.stdout.fnmatch_lines(["*harness_load: knee_factor=0.5: a multiple of step 1's p90*"])
    assert "'x' is not a concurrency level" not in result.stdout.str()
