"""Response caching: the `Cache` extension point.

`NoCache` is the policy default: every lookup misses and nothing is stored.
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


CACHES: dict[str, type[Cache]] = {"none": NoCache}
