from decimal import Decimal

import tiktoken

from gateway.context import Attempt, RequestContext
from gateway.policy.models import PriceConfig
from gateway.telemetry import tokens
from gateway.telemetry.accounting import settle
from gateway.telemetry.cost import Pricing, TokenUse, policy_cost

BODY = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hello there"}]},
    ],
}


def ctx(upstream_model: str = "gpt-4o-mini", system: str = "openai") -> RequestContext:
    c = RequestContext("r", "POST", "/v1/chat/completions", operation="chat", model="m", status=200)
    c.upstream_model = upstream_model
    c.attempts.append(Attempt("p", upstream_model, 200, 0.01, system=system))
    c.request_body = BODY
    return c


def test_shipped_encodings_load_offline_and_match_tiktoken_ids() -> None:
    enc = tokens.encoding("o200k_base")
    assert enc.name == "o200k_base"
    assert enc.encode("hello world") == [24912, 2375]
    assert tokens.encoding_for("gpt-4").name == "cl100k_base"
    assert tokens.encoding_for("claude-3-5-haiku").name == "o200k_base"
    assert isinstance(enc, tiktoken.Encoding)


def test_reported_usage_wins_and_is_priced_by_genai_prices() -> None:
    c = ctx()
    c.usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 200},
    }
    settle(c, Pricing(), None)
    assert c.tokens == TokenUse(1000, 100, 200, 0, 0)
    assert not c.tokens_estimated
    assert (
        c.cost is not None
        and c.cost.total == Decimal("0.000195")
        and c.cost.source == "genai-prices"
    )
    assert c.request_body is None  # bodies are dropped once settled


def test_missing_usage_is_estimated_with_tiktoken() -> None:
    c = ctx()
    c.response_body = (
        b'{"choices":[{"message":{"role":"assistant","content":"Hi! How can I help?"}}]}'
    )
    settle(c, Pricing(), None)
    enc = tokens.encoding("o200k_base")
    assert c.tokens_estimated
    assert c.tokens is not None
    assert c.tokens.input == len(enc.encode("Be brief.\nHello there"))
    assert c.tokens.output == len(enc.encode("Hi! How can I help?"))
    streamed = ctx()
    streamed.stream_chunks = [
        b'{"choices":[{"delta":{"content":"Hi! How"}}]}',
        b'{"choices":[{"delta":{"content":" can I help?"}}]}',
    ]
    settle(streamed, Pricing(), None)
    assert streamed.tokens == c.tokens


def test_unknown_price_is_null_and_counted_never_guessed() -> None:
    pricing = Pricing()
    c = ctx("some-private-model")
    c.usage = {"prompt_tokens": 10, "completion_tokens": 5}
    settle(c, pricing, None)
    assert c.tokens is not None and c.cost is None
    assert pricing.unknown == 1


def test_policy_price_overrides_with_cache_and_reasoning_rates() -> None:
    price = PriceConfig(
        input_per_mtok=Decimal("2"),
        output_per_mtok=Decimal("8"),
        cached_input_per_mtok=Decimal("0.5"),
        cache_write_per_mtok=Decimal("2.5"),
        reasoning_per_mtok=Decimal("10"),
    )
    cost = policy_cost(
        TokenUse(input=1000, output=300, cached_input=400, cache_write=100, reasoning=100), price
    )
    assert cost.input == Decimal("0.00145")  # 500*2 + 400*0.5 + 100*2.5 per million
    assert cost.output == Decimal("0.0026")  # 200*8 + 100*10 per million
    assert cost.total == Decimal("0.00405")
    c = ctx("some-private-model")
    c.usage = {"prompt_tokens": 1000, "completion_tokens": 0}
    settle(c, Pricing(), price)
    assert c.cost is not None and c.cost.total == Decimal("0.002") and c.cost.source == "policy"


def test_a_local_model_without_a_price_costs_zero() -> None:
    from gateway.telemetry.cost import Pricing, TokenUse

    cost = Pricing().cost("onnx", "smollm2-135m-instruct", TokenUse(10, 20), None)
    assert cost is not None and cost.total == 0 and cost.source == "local"
