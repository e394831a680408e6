"""Cost of a call: LLM tokens and TTS characters times a price table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.evaluators.base import UNIT_COUNT, BaseEvaluator, MetricInfo, Score
from harness.trace import conventions as c
from harness.trace.instance import number

if TYPE_CHECKING:
    from harness.trace.instance import Instance, Span

__all__ = ["Cost", "LlmPrice", "PriceTable"]

GEN_AI_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
LK_TTS_METRICS = "lk.tts_metrics"
SPAN_TTS_REQUEST = "tts_request"

_Price = Annotated[float, Field(ge=0)]


class LlmPrice(BaseModel):
    """Price of one model per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    input_per_million: _Price = 0.0
    output_per_million: _Price = 0.0


class PriceTable(BaseModel):
    """Prices, read from config (e.g. a ``prices:`` section)::

        currency: USD
        llm:
          gpt-4o-mini: {input_per_million: 0.15, output_per_million: 0.60}
          "*": {input_per_million: 1.0, output_per_million: 4.0}   # any other model
        tts_per_million_chars: 15.0

    ``llm`` keys are model names as the spans report them (``gen_ai.request.model``, else
    ``gen_ai.response.model``); ``"*"`` prices every other model, including spans that
    name none. Unknown keys are errors.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] = "USD"
    llm: dict[str, LlmPrice] = Field(default_factory=dict)
    tts_per_million_chars: _Price | None = None

    def llm_price(self, model: str | None) -> LlmPrice | None:
        if model is not None and model in self.llm:
            return self.llm[model]
        return self.llm.get("*")


def _usage_spans(instance: Instance) -> list[Span]:
    """Spans carrying token usage, leaving out any whose descendant also carries it (an
    ``llm_node`` records usage only when no ``llm_request`` span under it does; never count
    the same tokens twice)."""
    carrying = [
        s
        for s in instance.spans
        if GEN_AI_INPUT_TOKENS in s.attributes or GEN_AI_OUTPUT_TOKENS in s.attributes
    ]
    keys = {s.key for s in carrying}
    out = []
    for s in carrying:
        if any(d.key in keys for d in instance.descendants(s)):
            continue
        out.append(s)
    return out


def _tts_characters(instance: Instance) -> int | None:
    """Characters sent to TTS: the length of each ``tts_node``'s ``lk.pii.input_text``; where
    that is absent (redacted), ``characters_count`` of ``lk.tts_metrics`` on the tts_request
    spans under it. None when no span tells."""
    total = 0
    known = False
    for s in instance.find(c.SPAN_TTS_NODE):
        text = s.attributes.get(c.LK_PII_TTS_INPUT_TEXT)
        if isinstance(text, str):
            total += len(text)
            known = True
            continue
        for d in instance.descendants(s):
            n = _metrics_characters(d)
            if n is not None:
                total += n
                known = True
    if not known:
        # tts_request spans outside any tts_node
        for s in instance.find(SPAN_TTS_REQUEST):
            if any(a.name == c.SPAN_TTS_NODE for a in instance.ancestors(s)):
                continue
            n = _metrics_characters(s)
            if n is not None:
                total += n
                known = True
    return total if known else None


def _metrics_characters(s: Span) -> int | None:
    raw = s.attributes.get(LK_TTS_METRICS)
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    n = data.get("characters_count") if isinstance(data, dict) else None
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else None


class Cost(BaseEvaluator):
    """LLM tokens, TTS characters and what they cost.

    - ``llm_input_tokens`` / ``llm_output_tokens`` (count, per call): the sum of
      ``gen_ai.usage.input_tokens`` / ``gen_ai.usage.output_tokens`` over the spans that
      carry them (``llm_request`` spans, or an ``llm_node`` without one under it).
    - ``tts_characters`` (count, per call): see :func:`_tts_characters`.
    - ``cost`` (unit: the price table's currency in lower case, e.g. ``usd``; per call):
      ``Σ tokens × price / 10⁶`` per model plus ``characters × tts_per_million_chars / 10⁶``.
      Given only when every usage found has a price: a model with no price (and no ``"*"``)
      or TTS characters without ``tts_per_million_chars`` leave ``cost`` out (an undercount
      would pass a cost gate silently), and ``detail`` of the token Scores says what was
      unpriced. No usage at all, no Score.
    """

    name = "cost"
    metrics = (
        MetricInfo("llm_input_tokens", UNIT_COUNT, "LLM input tokens of the call"),
        MetricInfo("llm_output_tokens", UNIT_COUNT, "LLM output tokens of the call"),
        MetricInfo("tts_characters", UNIT_COUNT, "characters sent to TTS"),
        MetricInfo("cost", "usd", "LLM and TTS cost of the call in the price table's currency"),
    )

    def __init__(self, prices: PriceTable | Mapping[str, Any] | None = None) -> None:
        if prices is None or isinstance(prices, PriceTable):
            self.prices = prices
        else:
            try:
                self.prices = PriceTable.model_validate(dict(prices))
            except ValidationError as e:
                raise ValueError(f"price table: {e}") from None

    def evaluate(self, instance: Instance) -> list[Score]:
        tokens_in = 0.0
        tokens_out = 0.0
        spent = 0.0
        unpriced: list[str] = []
        usage = _usage_spans(instance)
        for s in usage:
            tin = number(s.attributes.get(GEN_AI_INPUT_TOKENS)) or 0.0
            tout = number(s.attributes.get(GEN_AI_OUTPUT_TOKENS)) or 0.0
            tokens_in += tin
            tokens_out += tout
            model = s.attributes.get(GEN_AI_REQUEST_MODEL) or s.attributes.get(
                GEN_AI_RESPONSE_MODEL
            )
            model = str(model) if model else None
            price = self.prices.llm_price(model) if self.prices is not None else None
            if price is None:
                unpriced.append(f"model {model or '(unnamed)'}")
            else:
                spent += tin * price.input_per_million / 1e6 + tout * price.output_per_million / 1e6
        chars = _tts_characters(instance)
        if chars is not None and chars > 0:
            per = self.prices.tts_per_million_chars if self.prices is not None else None
            if per is None:
                unpriced.append("TTS characters")
            else:
                spent += chars * per / 1e6
        out: list[Score] = []
        note = f"unpriced: {', '.join(sorted(set(unpriced)))}" if unpriced else ""
        if usage:
            out.append(
                Score(
                    "llm_input_tokens",
                    tokens_in,
                    UNIT_COUNT,
                    layer=c.LAYER_CONVERSATIONAL,
                    detail=note,
                )
            )
            out.append(
                Score(
                    "llm_output_tokens",
                    tokens_out,
                    UNIT_COUNT,
                    layer=c.LAYER_CONVERSATIONAL,
                    detail=note,
                )
            )
        if chars is not None:
            out.append(
                Score(
                    "tts_characters",
                    float(chars),
                    UNIT_COUNT,
                    layer=c.LAYER_CONVERSATIONAL,
                    detail=note,
                )
            )
        if out and not unpriced and self.prices is not None:
            out.append(
                Score(
                    "cost",
                    spent,
                    self.prices.currency.lower(),
                    layer=c.LAYER_CONVERSATIONAL,
                    detail=f"{int(tokens_in)} in + {int(tokens_out)} out tokens, "
                    f"{chars or 0} TTS chars",
                )
            )
        return out
