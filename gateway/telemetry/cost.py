"""What a request cost, in exact decimals: the policy's per-model price if it sets one,
else `genai-prices` (bundled price data, never fetched at run time). An unknown price
gives no cost, never a wrong one."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cache

from genai_prices import Usage, calc_price
from genai_prices.types import ModelPrice

from gateway.policy.models import PriceConfig

log = logging.getLogger("gateway.telemetry")
MTOK = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Cost:
    total: Decimal
    input: Decimal
    output: Decimal
    source: str  # "policy" | "genai-prices"


@dataclass(frozen=True, slots=True)
class TokenUse:
    input: int  # all prompt tokens, cached ones included (OpenAI's convention)
    output: int  # all completion tokens, reasoning included
    cached_input: int = 0
    cache_write: int = 0
    reasoning: int = 0


class Pricing:
    def __init__(self) -> None:
        self.unknown = 0  # requests whose price nobody knows

    def cost(
        self, system: str, model: str, use: TokenUse, override: PriceConfig | None
    ) -> Cost | None:
        if override is not None:
            return policy_cost(use, override)
        if system in IN_PROCESS:  # a model run by the gateway itself costs nothing per token
            return Cost(Decimal(0), Decimal(0), Decimal(0), "local")
        found = library_price(system, model)
        if found is None:
            self.unknown += 1
            if self.unknown == 1 or self.unknown % 1000 == 0:
                log.warning(
                    "no price known for %s/%s: cost left empty (%d so far)",
                    system,
                    model,
                    self.unknown,
                )
            return None
        price, flat = found
        if flat is not None:  # the common case, ~100x faster than calc_price
            return replace(policy_cost(use, flat), source="genai-prices")
        usage = Usage(
            input_tokens=use.input,
            output_tokens=use.output,
            cache_read_tokens=use.cached_input,
            cache_write_tokens=use.cache_write,
        )
        calc = price.calc_price(usage)
        return Cost(
            Decimal(calc["total_price"]),
            Decimal(calc["input_price"]),
            Decimal(calc["output_price"]),
            "genai-prices",
        )


IN_PROCESS = frozenset({"onnx", "torch"})  # local providers' gen_ai.provider.name
PROVIDER_IDS = {"openai": "openai", "azure.ai.openai": "azure", "anthropic": "anthropic"}


@cache
def library_price(system: str, model: str) -> tuple[ModelPrice, PriceConfig | None] | None:
    """genai-prices' current price for a model, looked up once (~200 us each), with its
    flat rates when it has them."""
    provider = PROVIDER_IDS.get(system)
    for provider_id in (provider, None) if provider else (None,):
        try:
            price = calc_price(
                Usage(input_tokens=1), model_ref=model, provider_id=provider_id
            ).model_price
        except LookupError:
            continue
        return price, flat_rates(price)
    return None


def flat_rates(price: ModelPrice) -> PriceConfig | None:
    """genai-prices' rates as a flat price, when none of them is tiered."""
    names = {
        "input_per_mtok": "input_mtok",
        "output_per_mtok": "output_mtok",
        "cached_input_per_mtok": "cache_read_mtok",
        "cache_write_per_mtok": "cache_write_mtok",
    }
    rates = {ours: getattr(price, theirs, None) for ours, theirs in names.items()}
    if rates["input_per_mtok"] is None or rates["output_per_mtok"] is None:
        return None
    if not all(r is None or isinstance(r, Decimal) for r in rates.values()):
        return None
    return PriceConfig.model_validate(rates)


def policy_cost(use: TokenUse, price: PriceConfig) -> Cost:
    cached_rate = (
        price.cached_input_per_mtok
        if price.cached_input_per_mtok is not None
        else price.input_per_mtok
    )
    write_rate = (
        price.cache_write_per_mtok
        if price.cache_write_per_mtok is not None
        else price.input_per_mtok
    )
    reasoning_rate = (
        price.reasoning_per_mtok if price.reasoning_per_mtok is not None else price.output_per_mtok
    )
    uncached = max(use.input - use.cached_input - use.cache_write, 0)
    input_cost = (
        uncached * price.input_per_mtok
        + use.cached_input * cached_rate
        + use.cache_write * write_rate
    ) / MTOK
    visible = max(use.output - use.reasoning, 0)
    output_cost = (visible * price.output_per_mtok + use.reasoning * reasoning_rate) / MTOK
    return Cost(input_cost + output_cost, input_cost, output_cost, "policy")
