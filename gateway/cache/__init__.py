"""Response caching: the `Cache` extension point.

`NoCache` is what runs until a policy can configure a cache: every lookup is a bypass
and nothing is stored. Cache types will come from a registry keyed by the policy's `type`,
as providers and guardrails do.
"""

from __future__ import annotations

from typing import Protocol

from gateway.context import RequestContext
from gateway.providers.base import Completion
from gateway.requests import ParsedRequest


class Cache(Protocol):
    async def get(self, ctx: RequestContext, call: ParsedRequest) -> Completion | None: ...

    async def put(
        self, ctx: RequestContext, call: ParsedRequest, completion: Completion
    ) -> None: ...


class NoCache:
    async def get(self, ctx: RequestContext, call: ParsedRequest) -> Completion | None:
        ctx.cache_status = "bypass"
        return None

    async def put(self, ctx: RequestContext, call: ParsedRequest, completion: Completion) -> None:
        return None
