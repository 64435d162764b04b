"""The `redis` limit store: a reservation is one Lua script (every counter checked, then
all reserved, on Redis's own clock), a settlement another. Counters are plain strings
(`INCRBYFLOAT`) keyed by their window; leases a sorted set scored by expiry; each
reservation a hash (what it reserved where) in a sorted set of pending ones, whose
expired members every reservation sweeps (their leases end; what they reserved stays
counted: a replica that died after the call most likely paid for it)."""

from __future__ import annotations

import asyncio

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.limits import Check, Decision, StoreUnavailable

RESERVATIONS = "gw:lim:res:"
PENDING = "gw:lim:pending"
SWEEP = 20  # expired reservations swept a step, at most
SETTLE_BATCH_S = 0.002

RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, prefix = ARGV[1], ARGV[4]
local lease_ms, res_ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local checks = cjson.decode(ARGV[5])  -- [[key, kind, limit, amount, window, ttl_ms], ...]
local n, res_key, pending = #checks, KEYS[1], KEYS[2]
for _, old in ipairs(redis.call('ZRANGEBYSCORE', pending, '-inf', now, 'LIMIT', 0, %(sweep)d)) do
  local fields = redis.call('HGETALL', prefix .. old)
  for j = 1, #fields, 2 do
    local kind, key = string.match(fields[j], '^(%%a+):(.*)$')
    if kind == 'lease' then redis.call('ZREM', key, old) end
  end
  redis.call('DEL', prefix .. old)
  redis.call('ZREM', pending, old)
end
if redis.call('EXISTS', res_key) == 1 then return {2, tostring(now)} end
local keys, values = {}, {}
for i = 1, n do
  local c = checks[i]
  local kind, limit, amount, window = c[2], c[3], c[4], c[5]
  local key = c[1]
  if window == 'minute' then key = key .. ':' .. math.floor(now / 60000)
  elseif window ~= '' then key = key .. ':' .. window end
  keys[i] = key
  local current
  if kind == 'lease' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    current = redis.call('ZCARD', key)
    if current + 1 > limit then return {0, tostring(now), i, tostring(current)} end
  else
    current = tonumber(redis.call('GET', key) or '0')
    if (kind == 'count' and current + amount > limit) or (kind ~= 'count' and current >= limit) then
      return {0, tostring(now), i, tostring(current)}
    end
  end
  values[i] = current
end
local out, fields = {1, tostring(now), 0}, {}
for i = 1, n do
  local kind, amount, ttl = checks[i][2], checks[i][4], checks[i][6]
  local key = keys[i]
  if kind == 'lease' then
    redis.call('ZADD', key, now + lease_ms, rid)
    redis.call('PEXPIRE', key, lease_ms + 60000)
    fields[#fields + 1] = 'lease:' .. key
    fields[#fields + 1] = 1
    out[#out + 1] = tostring(values[i] + 1)
  else
    local after = redis.call('INCRBYFLOAT', key, amount)
    if values[i] == 0 then redis.call('PEXPIRE', key, ttl) end  -- a new window
    if kind ~= 'count' then
      fields[#fields + 1] = kind .. ':' .. key
      fields[#fields + 1] = amount
    end
    out[#out + 1] = after
  end
end
redis.call('HSET', res_key, 'at', now, unpack(fields))
redis.call('PEXPIRE', res_key, res_ttl + 60000)
redis.call('ZADD', pending, now + res_ttl, rid)
return out
""" % {"sweep": SWEEP}  # noqa: UP031 (Lua's own % patterns)

READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {tostring(now)}
for i = 1, #KEYS do
  local kind, window, key = ARGV[2 * i - 1], ARGV[2 * i], KEYS[i]
  if window == 'minute' then key = key .. ':' .. math.floor(now / 60000)
  elseif window ~= '' then key = key .. ':' .. window end
  if kind == 'lease' then out[#out + 1] = tostring(redis.call('ZCOUNT', key, now, '+inf'))
  else out[#out + 1] = redis.call('GET', key) or '0' end
end
return out
"""

SETTLE = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return 0 end
local actual = {tokens = tonumber(ARGV[2]), usd = tonumber(ARGV[3])}
for j = 1, #fields, 2 do
  local kind, key = string.match(fields[j], '^(%a+):(.*)$')
  if kind == 'lease' then
    redis.call('ZREM', key, ARGV[1])
  elseif (kind == 'tokens' or kind == 'usd') and redis.call('EXISTS', key) == 1 then
    redis.call('INCRBYFLOAT', key, actual[kind] - tonumber(fields[j + 1]))
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


class RedisLimits:
    def __init__(self, client: aioredis.Redis, timeout_s: float, lease_s: float,
                 reservation_ttl_s: float) -> None:  # fmt: skip
        self.client, self.timeout_s = client, timeout_s
        self.lease_ms, self.ttl_ms = int(lease_s * 1000), int(reservation_ttl_s * 1000)
        self._reserve = client.register_script(RESERVE)
        self._settle = client.register_script(SETTLE)
        self._read = client.register_script(READ)
        self._settling: list[tuple[str, float, float]] = []  # the next batch

    async def reserve(self, request_id: str, checks: list[Check]) -> Decision:
        keys = [RESERVATIONS + request_id, PENDING]
        packed = orjson.dumps(
            [[c.key, c.kind, c.limit, c.amount, c.window, int(c.ttl_s * 1000)] for c in checks]
        )  # one argument: ~50 us less than 30 (redis-py)
        args: list[str | int | bytes] = [request_id, self.lease_ms, self.ttl_ms, RESERVATIONS,
                                         packed]  # fmt: skip
        try:
            async with asyncio.timeout(self.timeout_s):
                out = await self._reserve(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc or type(exc).__name__}") from None
        now_s = float(out[1]) / 1000
        if int(out[0]) == 2:  # this request id reserved already (a retried step)
            return Decision(True, now_s)
        if int(out[0]) == 0:
            failed = checks[int(out[2]) - 1]
            return Decision(False, now_s, failed, [float(out[3])])
        return Decision(True, now_s, None, [float(v) for v in out[3:]])

    async def settle(self, request_id: str, tokens: float, usd: float) -> None:
        """Settlements within SETTLE_BATCH_S of each other go in one pipeline (one round
        trip), sent by the first of them: they come after the response, and a round trip
        a request is most of what limits cost (redis-py: ~160 us of CPU each here)."""
        self._settling.append((request_id, tokens, usd))
        if len(self._settling) > 1:
            return  # the batch's first settlement sends it
        await asyncio.sleep(SETTLE_BATCH_S)
        batch, self._settling = self._settling, []
        try:
            async with (
                asyncio.timeout(self.timeout_s * 10),
                self.client.pipeline(transaction=False) as pipe,
            ):
                for rid, used, spent in batch:
                    await self._settle(keys=[RESERVATIONS + rid, PENDING], args=[rid, used, spent],
                                       client=pipe)  # fmt: skip
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc or type(exc).__name__}") from None

    async def read(self, checks: list[Check]) -> Decision:
        args = [a for c in checks for a in (c.kind, c.window)]
        try:
            async with asyncio.timeout(self.timeout_s * 10):
                out = await self._read(keys=[c.key for c in checks], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc or type(exc).__name__}") from None
        return Decision(True, float(out[0]) / 1000, None, [float(v) for v in out[1:]])

    async def aclose(self) -> None:
        """The client is the runtime's (shared with other stages): it closes it."""
