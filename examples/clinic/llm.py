"""A rule-based stand-in for a large language model, behind livekit-agents' LLM interface.

Each request runs :func:`examples.clinic.dialog.decide` over the chat context and streams
the result back as ``ChatChunk``s: text for a reply, or a ``FunctionToolCall`` that the
framework executes against the agent's ``@function_tool`` methods before asking again with
the tool's output in the context. The fault knobs (:mod:`examples.clinic.faults`) can
delay the first chunk, repeat the previous reply, answer with an unhelpful fallback, book
the wrong day, or confirm a booking that was never requested.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from livekit.agents import llm
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)
from livekit.agents.utils import shortuuid

from . import dialog
from .domain import DAYS, OPENINGS
from .faults import FaultPlan, Faults

logger = logging.getLogger("clinic.llm")

_WORDS = re.compile(r"\S+\s*")
FALLBACK = "Sorry, I can't help with that right now."
"""The unhelpful reply of the ``fallback_share`` fault."""
PHANTOM_CONFIRMATION_ID = "1001"


class RuleBasedLLM(llm.LLM):
    """Deterministic: the same chat context always gives the same reply or tool call."""

    def __init__(self, *, faults: Faults | None = None, call_key: str = "") -> None:
        super().__init__()
        self._faults = faults or Faults()
        self._delays = self._faults.llm_delays(call_key)
        self.fault_plan: FaultPlan = self._faults.plan(call_key)

    @property
    def faults(self) -> Faults:
        return self._faults

    @property
    def model(self) -> str:
        return "clinic-dialog-rules"

    @property
    def provider(self) -> str:
        return "bright-smile-dental"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> RuleBasedStream:
        # The latency fault delays each reply to the caller once: the request that answers
        # the caller's words, not the greeting, a silence prompt or a follow-up after a tool.
        to_caller = answers_the_caller(chat_ctx)
        delay = self._delays.next_delay() if to_caller else 0.0
        replace_with = None
        if to_caller:
            if self.fault_plan.hit("fallback_share"):
                replace_with = FALLBACK
            elif self.fault_plan.hit("loop_share"):
                replace_with = previous_reply(chat_ctx)
        return RuleBasedStream(
            self,
            chat_ctx=chat_ctx,
            tools=tools or [],
            conn_options=conn_options,
            delay=delay,
            tool_choice=tool_choice,
            replace_with=replace_with,
        )


def answers_the_caller(chat_ctx: llm.ChatContext) -> bool:
    """True when the newest item of the conversation is something the caller said."""
    for item in reversed(chat_ctx.items):
        if item.type == "message" and item.role in ("system", "developer"):
            continue
        return item.type == "message" and item.role == "user"
    return False


def previous_reply(chat_ctx: llm.ChatContext) -> str | None:
    """The text of the agent's latest reply, None before it has said anything."""
    for item in reversed(chat_ctx.items):
        if item.type == "message" and item.role == "assistant" and (item.text_content or ""):
            return item.text_content
    return None


def wrong_day(day: str, time: str) -> str:
    """The next weekday after ``day`` whose openings include ``time`` (else the next day):
    the plausible wrong value of the ``wrong_args_share`` fault."""
    start = DAYS.index(day) if day in DAYS else 0
    following = [DAYS[(start + k) % len(DAYS)] for k in range(1, len(DAYS))]
    return next((d for d in following if time in OPENINGS[d]), following[0])


def with_faults(decision: dialog.Decision, plan: FaultPlan) -> dialog.Decision:
    """A ``request_booking`` decision as the faults change it: confirmed without the call
    (``phantom_booking_share``), or sent with a wrong day (``wrong_args_share``)."""
    if not isinstance(decision, dialog.ToolCall) or decision.name != "request_booking":
        return decision
    args = decision.arguments
    if plan.hit("phantom_booking_share"):
        logger.info("fault: confirming a booking that was never requested")
        return dialog.Reply(
            dialog.confirmation_text(
                str(args.get("name", "")),
                str(args.get("service", "")),
                str(args.get("day", "")),
                str(args.get("time", "")),
                PHANTOM_CONFIRMATION_ID,
            ),
            dialog.ASK_ANYTHING_ELSE,
        )
    if plan.hit("wrong_args_share"):
        day = wrong_day(str(args.get("day", "")), str(args.get("time", "")))
        logger.info("fault: booking %s instead of %s", day, args.get("day"))
        return dialog.ToolCall(decision.name, {**args, "day": day})
    return decision


class RuleBasedStream(llm.LLMStream):
    def __init__(
        self,
        llm_: RuleBasedLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
        delay: float,
        tool_choice: NotGivenOr[llm.ToolChoice],
        replace_with: str | None = None,
    ) -> None:
        super().__init__(llm_, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._bugs = frozenset([llm_.faults.bug] if llm_.faults.bug else [])
        self._delay = delay
        self._tool_choice = tool_choice
        self._replace_with = replace_with
        self._plan = llm_.fault_plan

    async def _run(self) -> None:
        if self._delay > 0:
            logger.info("fault: delaying the LLM's first token by %.0f ms", self._delay * 1000)
            await asyncio.sleep(self._delay)
        decision = dialog.decide(self._chat_ctx, self._bugs)
        if self._replace_with is not None:
            logger.info("fault: answering %r instead of %r", self._replace_with, decision)
            decision = dialog.Reply(self._replace_with)
        decision = with_faults(decision, self._plan)
        request_id = shortuuid("rules_")
        if isinstance(decision, dialog.ToolCall) and not self._tool_available(decision.name):
            logger.warning("tool %s is not available for this reply", decision.name)
            decision = dialog.Reply("Sorry, I can't do that right now.")
        if isinstance(decision, dialog.ToolCall):
            n_calls = sum(isinstance(i, llm.FunctionCall) for i in self._chat_ctx.items)
            call = llm.FunctionToolCall(
                name=decision.name,
                arguments=json.dumps(decision.arguments),
                call_id=f"call_{decision.name}_{n_calls + 1}",
            )
            self._send(request_id, llm.ChoiceDelta(role="assistant", tool_calls=[call]))
            completion_tokens = 1
        else:
            pieces = _WORDS.findall(decision.text)
            for piece in pieces:
                self._send(request_id, llm.ChoiceDelta(role="assistant", content=piece))
            completion_tokens = len(pieces)
        prompt_tokens = len(self._chat_ctx.items)
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=request_id,
                usage=llm.CompletionUsage(
                    completion_tokens=completion_tokens,
                    prompt_tokens=prompt_tokens,
                    total_tokens=completion_tokens + prompt_tokens,
                ),
            )
        )

    def _send(self, request_id: str, delta: llm.ChoiceDelta) -> None:
        self._event_ch.send_nowait(llm.ChatChunk(id=request_id, delta=delta))

    def _tool_available(self, name: str) -> bool:
        if self._tool_choice == "none":
            return False
        return name in llm.ToolContext(self._tools).function_tools
