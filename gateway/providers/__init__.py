"""Providers, chosen from explicit registries keyed by the policy's `type`."""

from __future__ import annotations

from collections.abc import Callable

from gateway.policy.models import HttpProviderConfig, LocalProviderConfig, ProviderConfig
from gateway.providers.anthropic import AnthropicProvider
from gateway.providers.base import Provider
from gateway.providers.openai import AzureProvider, OpenAIProvider


def _onnx(name: str, config: LocalProviderConfig) -> Provider:
    from gateway.providers.local import OnnxProvider  # onnxruntime loads only when used

    return OnnxProvider(name, config)


PROVIDERS: dict[str, Callable[[str, HttpProviderConfig], Provider]] = {
    "openai": OpenAIProvider,
    "azure": AzureProvider,
    "anthropic": AnthropicProvider,
}
LOCAL_PROVIDERS: dict[str, Callable[[str, LocalProviderConfig], Provider]] = {
    "onnx": _onnx,
}


def build_provider(name: str, config: ProviderConfig) -> Provider:
    if isinstance(config, LocalProviderConfig):
        return LOCAL_PROVIDERS[config.type](name, config)
    return PROVIDERS[config.type](name, config)
