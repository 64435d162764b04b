"""A loaded policy made live: its providers, key checker and routes, swapped whole on reload."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import redis.asyncio as aioredis

from gateway.auth import KeyChecker
from gateway.cache import Cache, build_cache
from gateway.cache.redis_store import connect
from gateway.cache.response_cache import Embedder
from gateway.errors import ModelNotFound
from gateway.guardrails import Guardrail, build_guardrail
from gateway.keys import RecordStore, build_records
from gateway.keys.auth import Authenticator
from gateway.limits import LimitStore, build_store, limits_configured
from gateway.limits.stage import Limiter
from gateway.policy.loader import LoadedPolicy
from gateway.policy.models import ModelConfig, ModelGuardrails, Policy
from gateway.prompts.stage import Experiment, build_experiments
from gateway.providers import build_provider
from gateway.providers.base import Provider
from gateway.routing import Route, Target, TargetHealth, build_route, new_health

STATE_FILE = "gateway-state.db"  # the embedded store's keys and teams


class Runtime:
    def __init__(self, loaded: LoadedPolicy, reuse: Runtime | None = None) -> None:
        self.loaded = loaded
        self.policy: Policy = loaded.policy
        self.created = int(time.time())
        self.keys = KeyChecker(self.policy.auth)
        self.keys_by_id = {key.id: key for key in self.policy.auth.keys}
        self.providers: dict[str, Provider] = {
            name: reuse.providers[name]
            if reuse is not None and reuse.policy.providers.get(name) == config
            else build_provider(name, config)
            for name, config in self.policy.providers.items()
        }
        self.guardrails = {
            name: build_guardrail(name, c) for name, c in self.policy.guardrails.items()
        }
        # Redis clients are shared across reloads (closed with the last runtime)
        self.redis: dict[str, aioredis.Redis] = dict(reuse.redis) if reuse is not None else {}
        self.embedder: Embedder | None = reuse.embedder if reuse is not None else None
        self.caches: dict[str, Cache] = {
            name: reuse.caches[name]
            if reuse is not None and reuse.policy.caches.get(name) == config
            else build_cache(name, config, self.redis_client, self.shared_embedder)
            for name, config in self.policy.caches.items()
        }
        self._config_hashes: dict[str, str] = {}
        # target health (EWMA, breaker) survives a reload while its provider is unchanged
        kept = reuse.health if reuse is not None else {}
        self.health: dict[tuple[str, str], TargetHealth] = {
            k: h for k, h in kept.items()
            if reuse is not None and reuse.providers.get(k[0]) is self.providers.get(k[0])
        }  # fmt: skip
        self.prompts = loaded.prompts
        self.experiments: dict[str, Experiment] = build_experiments(
            self.prompts, self.policy, reuse.experiments if reuse is not None else {}
        )  # (a reused experiment keeps its allocator)
        self.records = self._records(reuse)
        self.auth = Authenticator(self.policy, self.records)
        self.limit_store = self._limit_store(reuse)
        self.close_store = self.close_records = True
        self.limiter = (
            Limiter(self.policy, self.limit_store, ZoneInfo(self.policy.limits.timezone),
                    {name: p.system for name, p in self.providers.items()})
            if self.limit_store is not None else None
        )  # fmt: skip
        if self.limiter is not None and reuse is not None and reuse.limiter is not None:
            self.limiter.alerted = reuse.limiter.alerted  # alerts stay sent across reloads
        self.routes = {name: self._route(name, config)
                       for name, config in self.policy.models.items()}  # fmt: skip
        self.inflight = 0
        self._on_idle: Callable[[], None] | None = None
        self.models_body = orjson.dumps(
            {"object": "list", "data": [self.model_card(m) for m in self.policy.models]}
        )

    def model_card(self, model_id: str) -> dict[str, object]:
        config = self.model(model_id)
        return {
            "id": model_id,
            "object": "model",
            "created": self.created,
            "owned_by": config.owned_by or config.resolved_targets[0].provider,
        }

    def model(self, model_id: str) -> ModelConfig:
        config = self.policy.models.get(model_id)
        if config is None:
            raise ModelNotFound(model_id)
        return config

    @property
    def store_at(self) -> tuple[str, str | None, Path]:
        """Where the store is: a reload keeps it open while this is unchanged."""
        return (self.policy.store.type, self.policy.store.url, self.state_folder.resolve())

    @property
    def state_folder(self) -> Path:
        """The embedded store's folder: `store.path`, else the request log's, else ."""
        policy = self.policy
        if policy.store.path:
            return Path(policy.store.path)
        log_path = policy.telemetry.duckdb
        return Path(log_path).parent if log_path else Path()

    def _records(self, reuse: Runtime | None) -> RecordStore | None:
        """Keys and teams made through the admin API: when the policy sets `store:`."""
        store = self.policy.store
        if "store" not in self.policy.model_fields_set:
            return None
        if reuse is not None and reuse.records is not None and reuse.store_at == self.store_at:
            return reuse.records
        return build_records(store, self.redis_client, self.state_folder / STATE_FILE)

    def _limit_store(self, reuse: Runtime | None) -> LimitStore | None:
        """The counters' store, when anything is limited (or `store:` is set): kept across
        reloads while `store:` and `limits:` are unchanged."""
        policy = self.policy
        if not limits_configured(policy) and "store" not in policy.model_fields_set:
            return None
        if reuse is not None and reuse.limit_store is not None and reuse.store_at == self.store_at:
            # one LMDB environment a file and process: kept while the store stays where
            # it is (`timeout_ms`, `lease_s`, `reservation_ttl_s` then apply at a restart)
            return reuse.limit_store
        return build_store(policy.store, policy.limits, self.redis_client, self.state_folder)

    def redis_client(self, url: str, timeout_s: float) -> aioredis.Redis:
        """One client (one connection pool) per Redis URL, for every cache naming it."""
        if url not in self.redis:
            self.redis[url] = connect(url, timeout_s)
        return self.redis[url]

    def shared_embedder(self) -> Embedder:
        """The MiniLM semantic caches embed with: loaded once, kept across reloads."""
        if self.embedder is None:
            self.embedder = Embedder()
        return self.embedder

    def cache_for(self, model_id: str) -> Cache | None:
        config = self.policy.models.get(model_id)
        return self.caches[config.cache] if config is not None and config.cache else None

    def _route(self, name: str, config: ModelConfig) -> Route:
        targets = []
        for t in config.resolved_targets:
            health = self.health.get((t.provider, t.upstream_model))
            if health is None:
                health = self.health[(t.provider, t.upstream_model)] = new_health(
                    t.provider, t.upstream_model, config
                )
            targets.append(Target(name, self.providers[t.provider], t.upstream_model, health,
                                  t.weight, t.context_length))  # fmt: skip
        return build_route(name, config, targets)

    def route(self, model_id: str) -> Route:
        found = self.routes.get(model_id)
        if found is None:
            raise ModelNotFound(model_id)
        return found

    def model_config_hash(self, model_id: str) -> str:
        """What a model alias resolves to (its targets and their providers): an entry made
        under another configuration is never served."""
        found = self._config_hashes.get(model_id)
        if found is None:
            chain = [model_id, *(r.model for r in self.model(model_id).fallback_rules)]
            resolved = [
                [alias, t.upstream_model, self.policy.providers[t.provider].model_dump(
                    mode="json", exclude={"api_key", "headers", "timeout_s", "connect_timeout_s",
                                          "max_connections", "proxy_url", "proxy_from_env"})]
                for alias in chain for t in self.policy.models[alias].resolved_targets
            ]  # fmt: skip
            found = hashlib.sha256(orjson.dumps(resolved, option=orjson.OPT_SORT_KEYS)).hexdigest()
            self._config_hashes[model_id] = found
        return found

    def chain(self, model_id: str, stage: str,
              key: ModelGuardrails | None = None) -> list[Guardrail]:  # fmt: skip
        """The guardrails for a model's input or output, in the policy's order: the model's
        own, then those of the gateway key the request came with (a name the policy no
        longer defines is skipped)."""
        config = self.policy.models.get(model_id)
        names = list(getattr(config.guardrails, stage)) if config is not None else []
        if key is not None:
            names += [n for n in getattr(key, stage) if n not in names]
        return [self.guardrails[name] for name in names if name in self.guardrails]

    def retired_by(self, newer: Runtime) -> list[Provider]:
        """Providers this runtime owns that `newer` did not take over."""
        self.close_store = newer.limit_store is not self.limit_store
        self.close_records = newer.records is not self.records
        kept = {id(p) for p in newer.providers.values()}
        return [p for p in self.providers.values() if id(p) not in kept]

    async def aclose(self, providers: list[Provider] | None = None) -> None:
        """Close the given providers (default: all), guardrails holding connections, and
        (when closing all) the Redis clients."""
        for provider in self.providers.values() if providers is None else providers:
            await provider.aclose()
        if self.limit_store is not None and (providers is None or self.close_store):
            await self.limit_store.aclose()
        if self.records is not None and (providers is None or self.close_records):
            await self.records.aclose()
        if providers is None:
            for client in self.redis.values():
                await client.aclose()
        for guardrail in self.guardrails.values():
            aclose = getattr(guardrail, "aclose", None)  # webhooks hold an HTTP pool
            if aclose is not None:
                await aclose()

    def acquire(self) -> None:
        self.inflight += 1

    def release(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._on_idle is not None:
            on_idle, self._on_idle = self._on_idle, None
            on_idle()

    def retire(self, on_idle: Callable[[], None]) -> None:
        """Call `on_idle` once the last request that started on this runtime is done."""
        if self.inflight == 0:
            on_idle()
        else:
            self._on_idle = on_idle
