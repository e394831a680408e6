"""Every fault knob of the clinic: read from the environment and the dispatch metadata,
validated with a message naming it, drawn reproducibly, and doing what it says in the
layer it breaks; and each with a case that must not fire (defaults, share 0)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.agents import llm

from examples.clinic import dialog
from examples.clinic.after_call import Job, WorkflowConfig
from examples.clinic.agent import ClinicAgent, after_call_faults, endpointing_settings
from examples.clinic.faults import (
    BACKEND_KNOBS,
    KNOBS,
    FaultConfigError,
    Faults,
    env_name,
    knob_table,
)
from examples.clinic.llm import FALLBACK, RuleBasedLLM, with_faults, wrong_day
from examples.clinic.stt import CONFUSABLES, distort_transcript
from examples.clinic.tts import GLITCH_MS, cut_end, glitch, insert_gap, reply_faults

README = Path(__file__).resolve().parents[2] / "examples" / "clinic" / "README.md"

# a valid and an invalid raw (environment) value per knob kind
GOOD = {
    "ms": ("250", 250),
    "int": ("7", 7),
    "share": ("0.25", 0.25),
    "flag_share": ("1", 1.0),
    "fraction": ("0.5", 0.5),
    "per_s": ("3.5", 3.5),
    "bug": ("date_loop", "date_loop"),
    "glitch_kind": ("clip", "clip"),
    "word_pair": ("Tuesday : Thursday", "tuesday:thursday"),
}
BAD = {
    "ms": "-3",
    "int": "x",
    "share": "1.5",
    "flag_share": "maybe",
    "fraction": "2",
    "per_s": "999",
    "bug": "dateloop",
    "glitch_kind": "crackle",
    "word_pair": "tuesday",
}


# --- parsing ----------------------------------------------------------------------------------


def test_defaults_break_nothing():
    f = Faults()
    plan = f.plan("c-1")
    # a share on its own is off at 0; one that goes with a magnitude waits for it (0: off)
    alone = [k for k in KNOBS if k.endswith("_share") and getattr(f, k) == 0.0]
    assert len(alone) >= 9 and not any(plan.hit(k) for k in alone)
    assert all(getattr(f, k) == 0 for k, knob in KNOBS.items() if knob.kind in ("ms", "per_s"))
    assert distort_transcript("next tuesday please", plan) == "next tuesday please"
    pcm = (np.sin(np.arange(22050) / 5) * 8000).astype(np.int16)
    out, applied = reply_faults(pcm, 22050, plan)
    assert applied == [] and np.array_equal(out, pcm)
    assert after_call_faults(plan) == (False, False, False)
    assert endpointing_settings(0, 0) == (0.55, 0.5)


@pytest.mark.parametrize("name", sorted(KNOBS))
def test_every_knob_reads_from_env_and_metadata_and_names_itself_when_bad(name):
    kind = KNOBS[name].kind
    raw, value = GOOD[kind]
    assert getattr(Faults.from_env({env_name(name): raw}), name) == value
    meta = {"faults": {name: raw}}
    assert getattr(Faults.from_metadata(meta, base=Faults()), name) == value
    with pytest.raises(FaultConfigError) as err:
        Faults.from_env({env_name(name): BAD[kind]})
    assert env_name(name) in str(err.value) and repr(BAD[kind]) in str(err.value)
    with pytest.raises(FaultConfigError, match=re.escape(f"dispatch metadata faults.{name}")):
        Faults.from_metadata({"faults": {name: BAD[kind]}}, base=Faults())


def test_flag_shares_take_true_false_and_a_share():
    assert Faults.from_env({"CLINIC_SKIP_APPROVAL": "true"}).skip_approval == 1.0
    assert Faults.from_env({"CLINIC_WORKFLOW_CRASH": "0"}).workflow_crash == 0.0
    assert Faults.from_env({"CLINIC_WORKFLOW_CRASH": "0.3"}).workflow_crash == 0.3
    assert Faults(skip_approval=True).skip_approval == 1.0
    assert Faults.from_metadata({"faults": {"skip_approval": True}}, Faults()).skip_approval == 1


def test_direct_construction_is_validated_with_the_field_name():
    with pytest.raises(FaultConfigError, match=r"Faults\.tts_cut_fraction must be a number"):
        Faults(tts_cut_fraction=1.5)
    with pytest.raises(FaultConfigError, match=r"Faults\.tts_gap_ms must be an integer"):
        Faults(tts_gap_ms=1.5)  # type: ignore[arg-type]
    with pytest.raises(FaultConfigError, match=r"Faults\.stt_confuse='nine'"):
        Faults(stt_confuse="nine")


def test_backend_overrides_accept_only_the_background_agents_knobs():
    base = Faults()
    got = base.overridden({"tool_latency_ms": 300}, where="h", allowed=BACKEND_KNOBS)
    assert got.tool_latency_ms == 300
    with pytest.raises(FaultConfigError, match=r"^h\.tts_gap_ms: unknown fault knob"):
        base.overridden({"tts_gap_ms": 300}, where="h", allowed=BACKEND_KNOBS)
    assert set(Faults(tool_failure_rate=0.5).backend_knobs()) == set(BACKEND_KNOBS)


def test_the_readme_lists_every_knob():
    text = README.read_text()
    assert knob_table() in text, "regenerate it: python -m examples.clinic.faults"
    for name in KNOBS:
        assert f"`{env_name(name)}`" in text


# --- draws ------------------------------------------------------------------------------------


def test_each_knob_draws_its_own_reproducible_stream():
    f = Faults(loop_share=0.5, fallback_share=0.5, seed=3)
    a, b = f.plan("c-1"), f.plan("c-1")
    seq = [a.hit("loop_share") for _ in range(50)]
    assert seq == [b.hit("loop_share") for _ in range(50)]
    assert 10 < sum(seq) < 40
    # drawing another knob in between leaves this one's stream as it was
    c = f.plan("c-1")
    assert [(c.hit("fallback_share"), c.hit("loop_share"))[1] for _ in range(50)] == seq
    other = f.plan("c-2")
    assert [other.hit("loop_share") for _ in range(50)] != seq


@settings(max_examples=40, deadline=None)
@given(share=st.floats(0, 1), key=st.text(max_size=12))
def test_a_share_hits_about_that_often_and_zero_never(share, key):
    plan = Faults(fallback_share=share).plan(key)
    hits = sum(plan.hit("fallback_share") for _ in range(400))
    if share == 0:
        assert hits == 0
    assert abs(hits / 400 - share) < 0.15


# --- speech recognition -----------------------------------------------------------------------


def test_stt_drop_substitute_and_confuse():
    text = "next tuesday please at nine"
    assert distort_transcript(text, Faults(stt_drop_share=1.0).plan()) == ""
    subbed = distort_transcript(text, Faults(stt_substitute_share=1.0).plan()).split()
    assert subbed == ["the", "thursday", "these", "the", "five"]
    assert CONFUSABLES["tuesday"] == "thursday"
    confused = distort_transcript(text, Faults(stt_confuse="tuesday:thursday").plan())
    assert confused == "next thursday please at nine"
    half = Faults(stt_drop_share=0.3, seed=1).plan("c")
    kept = [distort_transcript("a b c d e f g h i j", half).split() for _ in range(40)]
    share = 1 - sum(len(k) for k in kept) / 400
    assert 0.2 < share < 0.4
    # must not fire: another word is left alone, a zero share changes nothing
    assert distort_transcript("monday", Faults(stt_confuse="tuesday:thursday").plan()) == "monday"
    assert distort_transcript(text, Faults(stt_confuse_share=1.0).plan()) == text


# --- LLM and dialog ---------------------------------------------------------------------------


def _collect(model: RuleBasedLLM, ctx: llm.ChatContext) -> llm.CollectedResponse:
    async def run():
        return await model.chat(chat_ctx=ctx, tools=list(ClinicAgent().tools)).collect()

    return asyncio.run(run())


def _asked_hours() -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="assistant", content=dialog.GREETING)
    ctx.add_message(role="user", content="what are your opening hours")
    return ctx


def test_fallback_and_loop_replace_replies_to_the_caller_only():
    assert _collect(RuleBasedLLM(faults=Faults(fallback_share=1.0)), _asked_hours()).text == (
        FALLBACK
    )
    looped = _collect(RuleBasedLLM(faults=Faults(loop_share=1.0)), _asked_hours())
    assert looped.text == dialog.GREETING  # its previous reply, word for word
    # must not fire: the greeting is no reply to the caller, and share 0 is off
    greeting = _collect(RuleBasedLLM(faults=Faults(fallback_share=1.0)), llm.ChatContext.empty())
    assert greeting.text == dialog.GREETING
    healthy = _collect(RuleBasedLLM(faults=Faults(loop_share=0.0)), _asked_hours())
    assert "Monday to Friday" in healthy.text


BOOK = dialog.ToolCall(
    "request_booking", {"name": "John Miller", "day": "tuesday", "time": "09:00", "service": "x"}
)


def test_phantom_booking_confirms_without_the_tool_call():
    got = with_faults(BOOK, Faults(phantom_booking_share=1.0).plan())
    assert isinstance(got, dialog.Reply)
    assert "You're all set, John Miller" in got.text and "confirmation number" in got.text


def test_wrong_args_book_the_next_day_with_that_time_open():
    got = with_faults(BOOK, Faults(wrong_args_share=1.0).plan())
    assert isinstance(got, dialog.ToolCall) and got.arguments["day"] == "saturday"
    assert {k: v for k, v in got.arguments.items() if k != "day"} == {
        k: v for k, v in BOOK.arguments.items() if k != "day"
    }
    assert wrong_day("friday", "09:00") == "saturday"
    assert wrong_day("monday", "23:00") == "tuesday"  # nowhere open: simply the next day
    # must not fire: other tools and share 0
    other = dialog.ToolCall("check_availability", {"day": "tuesday"})
    assert with_faults(other, Faults(wrong_args_share=1.0).plan()) is other
    assert with_faults(BOOK, Faults().plan()) is BOOK


# --- speech synthesis -------------------------------------------------------------------------

RATE = 22050


def _speech(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * 220 * t) * 12000).astype(np.int16)


def test_cut_gap_and_glitches_change_the_audio_as_named():
    pcm = _speech(2.0)
    assert len(cut_end(pcm, 0.55)) == round(len(pcm) * 0.45)
    assert len(cut_end(pcm, 1.0)) == 0
    gapped = insert_gap(pcm, RATE, 1800)
    assert len(gapped) == len(pcm) + round(RATE * 1.8)
    mid = len(pcm) // 2
    assert not gapped[mid : mid + round(RATE * 1.8)].any()
    zeroed, n = glitch(pcm, RATE, 5.0, "zero")
    assert n == 10 and len(zeroed) == len(pcm)
    width = round(RATE * GLITCH_MS / 1000)
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[1], zeroed != 0, [1]]))))
    assert (runs[1::2] >= width - 1).sum() >= n  # n silences of at least 20 ms
    clipped, n = glitch(pcm, RATE, 5.0, "clip")
    assert n == 10 and (np.abs(clipped.astype(int)) >= 32767).sum() > 10 * width // 2
    # must not fire: no loud speech, no glitch
    quiet, n = glitch((pcm // 1000).astype(np.int16), RATE, 5.0, "zero")
    assert n == 0 and np.array_equal(quiet, pcm // 1000)


@settings(max_examples=30, deadline=None)
@given(
    seconds=st.floats(0.3, 3.0),
    per_s=st.floats(0.0, 20.0),
    kind=st.sampled_from(["zero", "clip"]),
)
def test_glitches_keep_the_length_and_touch_only_loud_speech(seconds, per_s, kind):
    pcm = _speech(seconds)
    pcm[: RATE // 4] = 0  # a silent lead-in is never glitched
    out, n = glitch(pcm, RATE, per_s, kind)
    assert len(out) == len(pcm)
    assert not out[: RATE // 4].any()
    assert n <= round(per_s * seconds) + 1


def test_reply_faults_draw_per_reply():
    f = Faults(tts_cut_fraction=0.5, tts_cut_share=0.5, seed=2)
    plan = f.plan("c")
    lengths = [len(reply_faults(_speech(1.0), RATE, plan)[0]) for _ in range(40)]
    assert {RATE // 2, RATE} == set(lengths)
    assert 10 < lengths.count(RATE // 2) < 30


# --- turn-taking ------------------------------------------------------------------------------


def test_endpointing_settings():
    assert endpointing_settings(1000, 0) == pytest.approx((0.05, 0.0))
    assert endpointing_settings(500, 0) == pytest.approx((0.55, 0.0))  # half: no shorter silence
    assert endpointing_settings(0, 3000) == pytest.approx((0.55, 3.5))
    assert endpointing_settings(10_000, 0) == pytest.approx((0.05, 0.0))  # never below 50 ms


# --- the after-call workflow ------------------------------------------------------------------


def test_after_call_faults_are_drawn_once_per_call():
    plan = Faults(workflow_skip_share=1.0).plan("c")
    assert after_call_faults(plan) == (True, False, False)
    assert after_call_faults(Faults(workflow_duplicate_share=1.0).plan("c")) == (
        False,
        True,
        False,
    )
    calls = [after_call_faults(Faults(workflow_crash=0.5).plan(f"c-{i}"))[2] for i in range(200)]
    assert 70 < sum(calls) < 130


def test_the_workflow_crash_share_draws_per_conversation_as_the_agent_does(tmp_path):
    cfg = WorkflowConfig(tmp_path / "db", crash=0.5, seed=4)

    def job(cid: str, crash: bool | None = None) -> Job:
        body: dict = {"conversation_id": cid}
        if crash is not None:
            body["faults"] = {"workflow_crash": crash}
        return Job.from_json(body)

    drawn = [cfg.crashes(job(f"c-{i}")) for i in range(100)]
    agent = [
        after_call_faults(Faults(workflow_crash=0.5, seed=4).plan(f"c-{i}"))[2] for i in range(100)
    ]
    assert drawn == agent and 25 < sum(drawn) < 75
    assert cfg.crashes(job("c-1", crash=False)) is False  # the job's own decision wins
    assert WorkflowConfig(tmp_path / "db").crashes(job("c-1")) is False
    assert WorkflowConfig(tmp_path / "db", crash=True).crash == 1.0
    with pytest.raises(FaultConfigError):
        WorkflowConfig(tmp_path / "db", crash=2.0)


def test_the_agent_forwards_the_background_knobs_as_json():
    f = Faults(tool_latency_ms=100, skip_approval=1.0)
    knobs = f.backend_knobs()
    assert json.loads(json.dumps(knobs))["skip_approval"] == 1.0
    assert Faults().overridden(knobs, where="x", allowed=BACKEND_KNOBS) == Faults(
        tool_latency_ms=100, skip_approval=1.0
    )
