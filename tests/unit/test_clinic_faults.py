"""The clinic's fault knobs: parsing, precedence, clear errors, deterministic draws."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from examples.clinic.faults import FaultConfigError, Faults


def test_defaults_are_harmless():
    faults = Faults.from_env({})
    assert faults == Faults(extra_llm_latency_ms=0, extra_llm_latency_share=1.0, seed=0)
    assert all(faults.llm_delays().next_delay() == 0.0 for _ in range(10))


def test_from_env():
    faults = Faults.from_env(
        {
            "CLINIC_EXTRA_LLM_LATENCY_MS": " 800 ",
            "CLINIC_EXTRA_LLM_LATENCY_SHARE": "0.25",
            "CLINIC_SEED": "7",
            "UNRELATED": "x",
        }
    )
    assert faults == Faults(extra_llm_latency_ms=800, extra_llm_latency_share=0.25, seed=7)


def test_empty_env_values_keep_defaults():
    assert Faults.from_env({"CLINIC_EXTRA_LLM_LATENCY_MS": ""}) == Faults()


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Faults().seed = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLINIC_EXTRA_LLM_LATENCY_MS": "fast"}, "CLINIC_EXTRA_LLM_LATENCY_MS must be an integer"),
        ({"CLINIC_EXTRA_LLM_LATENCY_MS": "-5"}, "CLINIC_EXTRA_LLM_LATENCY_MS must be >= 0"),
        ({"CLINIC_EXTRA_LLM_LATENCY_MS": "1.5"}, "CLINIC_EXTRA_LLM_LATENCY_MS must be an integer"),
        (
            {"CLINIC_EXTRA_LLM_LATENCY_SHARE": "1.5"},
            "CLINIC_EXTRA_LLM_LATENCY_SHARE must be a number between 0 and 1",
        ),
        (
            {"CLINIC_EXTRA_LLM_LATENCY_SHARE": "half"},
            "CLINIC_EXTRA_LLM_LATENCY_SHARE must be a number between 0 and 1",
        ),
        (
            {"CLINIC_EXTRA_LLM_LATENCY_SHARE": "nan"},
            "CLINIC_EXTRA_LLM_LATENCY_SHARE must be a number between 0 and 1",
        ),
        ({"CLINIC_SEED": "abc"}, "CLINIC_SEED must be an integer"),
    ],
)
def test_bad_env_values_name_the_variable(env, message):
    with pytest.raises(FaultConfigError) as err:
        Faults.from_env(env)
    assert message in str(err.value)
    assert repr(next(iter(env.values()))) in str(err.value)


def test_metadata_overrides_env():
    base = Faults.from_env({"CLINIC_EXTRA_LLM_LATENCY_MS": "100", "CLINIC_SEED": "3"})
    meta = json.dumps({"conversation_id": "c1", "faults": {"extra_llm_latency_ms": 1500}})
    faults = Faults.from_metadata(meta, base=base)
    assert faults == Faults(extra_llm_latency_ms=1500, extra_llm_latency_share=1.0, seed=3)


def test_metadata_accepts_environment_names():
    meta = {"faults": {"CLINIC_EXTRA_LLM_LATENCY_SHARE": 0.5}}
    assert Faults.from_metadata(meta, base=Faults()).extra_llm_latency_share == 0.5


@pytest.mark.parametrize("meta", [None, "", "{}", '{"conversation_id": "x"}', "[1, 2]"])
def test_metadata_without_faults_keeps_base(meta):
    base = Faults(extra_llm_latency_ms=5)
    assert Faults.from_metadata(meta, base=base) is base


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", "dispatch metadata is not valid JSON"),
        ('{"faults": 3}', "dispatch metadata faults must be a JSON object"),
        (
            '{"faults": {"llm_latency": 5}}',
            "dispatch metadata faults.llm_latency: unknown fault knob",
        ),
        (
            '{"faults": {"extra_llm_latency_ms": "slow"}}',
            "faults.extra_llm_latency_ms must be an integer",
        ),
        (
            '{"faults": {"extra_llm_latency_ms": true}}',
            "faults.extra_llm_latency_ms must be an integer",
        ),
        (
            '{"faults": {"extra_llm_latency_share": -0.1}}',
            "faults.extra_llm_latency_share must be a number between 0 and 1",
        ),
    ],
)
def test_bad_metadata_is_explained(meta, message):
    with pytest.raises(FaultConfigError, match=re.escape(message)):
        Faults.from_metadata(meta, base=Faults())


def test_direct_construction_is_validated():
    with pytest.raises(
        FaultConfigError, match=re.escape("Faults.extra_llm_latency_ms must be >= 0")
    ):
        Faults(extra_llm_latency_ms=-1)
    with pytest.raises(FaultConfigError, match=re.escape("Faults.extra_llm_latency_share")):
        Faults(extra_llm_latency_share=2.0)


def test_latency_applies_to_every_call_by_default():
    plan = Faults(extra_llm_latency_ms=250).llm_delays()
    assert [plan.next_delay() for _ in range(5)] == [0.25] * 5


def test_latency_share_is_seeded_and_deterministic_per_call():
    faults = Faults(extra_llm_latency_ms=1000, extra_llm_latency_share=0.3, seed=11)
    first = [faults.llm_delays().next_delay() for _ in range(1)]
    plan_a, plan_b = faults.llm_delays(), faults.llm_delays()
    a = [plan_a.next_delay() for _ in range(200)]
    b = [plan_b.next_delay() for _ in range(200)]
    assert a == b
    assert a[:1] == first
    assert set(a) == {0.0, 1.0}
    assert 0.2 < a.count(1.0) / len(a) < 0.4
    other = Faults(extra_llm_latency_ms=1000, extra_llm_latency_share=0.3, seed=12).llm_delays()
    assert [other.next_delay() for _ in range(200)] != a


def test_zero_share_never_delays():
    plan = Faults(extra_llm_latency_ms=1000, extra_llm_latency_share=0.0).llm_delays()
    assert all(plan.next_delay() == 0.0 for _ in range(100))


def test_bug_knob_is_validated_and_read_from_env_and_metadata():
    import pytest

    from examples.clinic.faults import FaultConfigError, Faults

    assert Faults.from_env({"CLINIC_BUG": "date_loop"}).bug == "date_loop"
    assert Faults.from_env({}).bug is None
    with pytest.raises(FaultConfigError, match="CLINIC_BUG='dateloop': known bugs are date_loop"):
        Faults.from_env({"CLINIC_BUG": "dateloop"})
    base = Faults()
    assert Faults.from_metadata({"faults": {"bug": "date_loop"}}, base).bug == "date_loop"


def test_latency_share_draws_differ_between_calls_but_repeat_per_call():
    from examples.clinic.faults import Faults

    f = Faults(extra_llm_latency_ms=2500, extra_llm_latency_share=0.2)

    def first_two(key: str) -> tuple[float, float]:
        plan = f.llm_delays(key)
        return plan.next_delay(), plan.next_delay()

    calls = [first_two(f"c-{i}") for i in range(500)]
    share = sum(d > 0 for pair in calls for d in pair) / 1000
    assert 0.15 < share < 0.25  # about 20 % of all replies, not the same replies every call
    assert first_two("c-7") == first_two("c-7")
