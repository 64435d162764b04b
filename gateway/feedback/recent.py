"""The requests this process answered lately, by the ids a client may give feedback
with (the gateway's request id, the response's `id`): whose key made them. Bounded:
past `limit` ids the oldest go, and feedback on them is looked up in the request log."""

from __future__ import annotations

from gateway.context import RequestContext

Owner = tuple[str, str | None]  # (request id, key id)
OWNERS_PER_ID = 8  # an id reused (an upstream's constant response id): its latest owners


class RecentRequests:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: dict[str, tuple[Owner, ...]] = {}

    def add(self, ctx: RequestContext) -> None:
        if self.limit == 0:
            return
        owner = (ctx.request_id, ctx.key_id)
        for ident in (ctx.request_id, ctx.response_id):
            if ident is None:
                continue
            known = self._ids.get(ident, ())
            if owner not in known:
                self._ids[ident] = (*known[1 - OWNERS_PER_ID :], owner)
        while len(self._ids) > self.limit:
            del self._ids[next(iter(self._ids))]

    def owners(self, ident: str) -> tuple[Owner, ...]:
        return self._ids.get(ident, ())
