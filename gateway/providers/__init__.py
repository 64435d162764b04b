"""Providers, chosen from an explicit registry keyed by the policy's `type`."""

from __future__ import annotations

from collections.abc import Callable

from gateway.policy.models import ProviderConfig
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.base import Provider
from gateway.providers.openai import AzureProvider, OpenAIProvider

ProviderFactory = Callable[[str, ProviderConfig], Provider]

PROVIDERS: dict[str, ProviderFactory] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "anthropic": AnthropicProvider,
}


def build_provider(name: str, config: ProviderConfig) -> Provider:
    return PROVIDERS[config.type](name, config)
