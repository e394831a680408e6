"""The clinic's rule-based LLM and espeak-ng TTS behind livekit-agents' interfaces."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest
from livekit.agents import llm

from examples.clinic import dialog
from examples.clinic.agent import ClinicAgent
from examples.clinic.faults import Faults
from examples.clinic.llm import RuleBasedLLM
from examples.clinic.tts import EspeakTTS


def tools() -> list[llm.Tool]:
    return list(ClinicAgent().tools)


def collect(model: RuleBasedLLM, ctx: llm.ChatContext, **kw) -> llm.CollectedResponse:
    async def run():
        return await model.chat(chat_ctx=ctx, tools=tools(), **kw).collect()

    return asyncio.run(run())


def test_greets_first():
    response = collect(RuleBasedLLM(), llm.ChatContext.empty())
    assert response.text == dialog.GREETING
    assert response.tool_calls == []
    assert response.usage is not None and response.usage.completion_tokens > 1


def test_emits_a_real_tool_call():
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="assistant", content=dialog.GREETING)
    ctx.add_message(role="user", content="i would like to book a cleaning on tuesday")
    response = collect(RuleBasedLLM(), ctx)
    assert response.text == ""
    [call] = response.tool_calls
    assert call.name == "check_availability"
    assert json.loads(call.arguments) == {"day": "tuesday"}
    assert call.call_id == "call_check_availability_1"


def test_tool_choice_none_falls_back_to_text():
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="user", content="goodbye")
    response = collect(RuleBasedLLM(), ctx, tool_choice="none")
    assert response.tool_calls == []
    assert response.text


def test_agent_exposes_the_tools_the_policy_calls():
    names = {t.info.name for t in tools()}
    assert {"check_availability", "request_booking", "end_call"} <= names


def test_extra_latency_delays_the_first_chunk_of_a_reply_to_the_caller():
    model = RuleBasedLLM(faults=Faults(extra_llm_latency_ms=300))
    answer = llm.ChatContext.empty()
    answer.add_message(role="assistant", content=dialog.GREETING)
    answer.add_message(role="user", content="what are your opening hours")

    async def first_chunk_after(ctx: llm.ChatContext) -> float:
        start = time.perf_counter()
        async with model.chat(chat_ctx=ctx, tools=tools()) as stream:
            async for _ in stream:
                return time.perf_counter() - start
        raise AssertionError("no chunk")

    assert asyncio.run(first_chunk_after(answer)) >= 0.29
    assert asyncio.run(first_chunk_after(llm.ChatContext.empty())) < 0.29  # the greeting


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_tts_streams_pcm_quickly():
    async def run():
        engine = EspeakTTS()
        start = time.perf_counter()
        first = None
        duration = 0.0
        async for ev in engine.synthesize("Thank you for calling Bright Smile Dental."):
            first = first if first is not None else time.perf_counter() - start
            assert ev.frame.sample_rate == 22050 and ev.frame.num_channels == 1
            duration += ev.frame.duration
        return first, duration

    first, duration = asyncio.run(run())
    assert first is not None and first < 1.0
    assert 1.0 < duration < 5.0
