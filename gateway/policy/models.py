"""The policy schema: typed, frozen, and strict (unknown keys are errors)."""

from __future__ import annotations

import ipaddress
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, SecretStr, field_validator

from gateway.policy.base import Strict
from gateway.policy.experiments import ExperimentConfig, FeedbackConfig
from gateway.policy.limits import (
    Budget,
    Limits,
    LimitSettings,
    ScopeLimits,
    StoreConfig,
    TeamConfig,
)
from gateway.policy.routing import RoutingConfig

ProviderType = Literal["openai", "azure", "anthropic"]
LocalProviderType = Literal["onnx"]


def http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https:// (got {value!r})")
    return value.rstrip("/")


def regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


HttpUrl = Annotated[str, AfterValidator(http_url)]
AdminKeyHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]  # an admin key's sha256
Regex = Annotated[str, AfterValidator(regex)]


class HttpProviderConfig(Strict):
    type: ProviderType
    base_url: HttpUrl
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=200, ge=1)
    # a whole answer (decompressed) or one stream event past this: 502, connection dropped
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    api_version: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # egress: an HTTP proxy (CONNECT for https upstreams), or HTTPS_PROXY/HTTP_PROXY and
    # NO_PROXY from the environment; credentials as http://user:pass@host:port
    proxy_url: HttpUrl | None = None
    proxy_from_env: bool = False

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_version", mode="before")
    @classmethod
    def _date_is_text(cls, value: object) -> object:
        return (
            value.isoformat() if isinstance(value, date) else value
        )  # YAML reads 2024-10-21 as a date


class LocalProviderConfig(Strict):
    """A model run inside the gateway: a built-in model id or a model directory."""

    type: LocalProviderType
    model: str = Field(min_length=1)
    threads: int = Field(default=0, ge=0)  # 0: onnxruntime's default (all cores)
    max_batch: int = Field(default=8, ge=1, le=256)  # sequences decoded together
    # tokens per sequence (prompt + answer); the KV cache holds max_batch of them
    context_length: int = Field(default=4096, ge=16)
    # a request without max_tokens generates at most this many (not the whole context)
    default_max_tokens: int = Field(default=512, ge=1)
    # activations in the 4-bit matmuls: exact = float32; fast = int8 (~35% faster on
    # CPU, but a 135M model's greedy answers change); mixed = the prompt in float32,
    # the answer's tokens in int8 (near fast's speed, the prompt read exactly)
    precision: Literal["exact", "mixed", "fast"] = "mixed"


ProviderConfig = Annotated[HttpProviderConfig | LocalProviderConfig, Field(discriminator="type")]


class PriceConfig(Strict):
    """USD per million tokens. Unset cache and reasoning rates bill at the plain rates."""

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)
    cache_write_per_mtok: Decimal | None = Field(default=None, ge=0)
    reasoning_per_mtok: Decimal | None = Field(default=None, ge=0)


Action = Literal["block", "redact", "warn", "log"]


class GuardrailBase(Strict):
    action: Action = "block"
    on_error: Literal["open", "closed"] = "closed"  # a scanner failure passes or blocks
    # redact on input with numbered placeholders (<EMAIL_ADDRESS_1>) that the answer's
    # copies are turned back into the originals for the client
    reversible: bool = False


class SecretsGuardrail(GuardrailBase):
    type: Literal["secrets"]


class DenyListGuardrail(GuardrailBase):
    type: Literal["deny_list"]
    keywords: tuple[str, ...] = ()  # case-insensitive, whole words or phrases
    patterns: tuple[Regex, ...] = ()  # regular expressions


class LimitsGuardrail(GuardrailBase):
    type: Literal["limits"]
    max_input_tokens: int | None = Field(default=None, ge=1)
    max_messages: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)  # caps the request's max_tokens


PiiEntity = Literal["EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE",
                    "US_SSN", "CRYPTO"]  # fmt: skip
PII_ENTITIES: tuple[PiiEntity, ...] = get_args(PiiEntity)


class CustomEntity(Strict):
    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    pattern: Regex
    score: float = Field(default=0.9, gt=0, le=1)


NerEntity = Literal["PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME"]


class PiiGuardrail(GuardrailBase):
    type: Literal["pii"]
    entities: tuple[PiiEntity, ...] = PII_ENTITIES
    # named entities from an installed spaCy pipeline (a package name or a directory);
    # the gateway never downloads one, and refuses to start when it is missing
    ner_model: str | None = None
    ner_entities: tuple[NerEntity, ...] = ("PERSON", "LOCATION")
    score_threshold: float = Field(default=0.4, ge=0, le=1)  # presidio's phone score is 0.4
    custom: tuple[CustomEntity, ...] = ()
    # where national-format phone numbers are recognised (international "+..." numbers
    # are found for any country). presidio's PhoneRecognizer defaults (a test keeps them
    # equal; importing presidio here would slow every `gateway check`); each region costs
    # ~0.2 ms per run of 5+ digits in the text, so naming only the markets served helps.
    phone_regions: tuple[str, ...] = Field(
        default=("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR"), min_length=1
    )

    @field_validator("phone_regions")
    @classmethod
    def _known_regions(cls, regions: tuple[str, ...]) -> tuple[str, ...]:
        from phonenumbers import SUPPORTED_REGIONS

        unknown = [r for r in regions if r not in SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown phone region(s) {', '.join(map(repr, unknown))} "
                             f"(ISO 3166 codes as python-phonenumbers knows them)")  # fmt: skip
        return tuple(dict.fromkeys(regions))


class WebhookGuardrail(GuardrailBase):
    """POSTs `{"guardrail", "stage", "text"}`; the service answers `{"flagged": bool,
    "findings": [{"start", "end", "entity"}]}` (findings optional: then the whole text)."""

    type: Literal["webhook"]
    url: HttpUrl
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    headers: dict[str, str] = Field(default_factory=dict)


class JsonSchemaGuardrail(GuardrailBase):
    """The answer must match the request's `response_format.json_schema` (output only)."""

    type: Literal["json_schema"]
    action: Literal["block", "warn", "log"] = "block"  # nothing to redact in a whole document


class PromptInjectionGuardrail(GuardrailBase):
    """Heuristics + a classifier on all-MiniLM-L6-v2 embeddings (input only)."""

    type: Literal["prompt_injection"]
    action: Literal["block", "warn", "log"] = "block"  # nothing to redact: the whole text
    threshold: float | None = Field(default=None, gt=0, lt=1)  # default: the trained one
    threads: int = Field(default=2, ge=1)


INPUT_ONLY = {"prompt_injection"}
GuardrailConfig = Annotated[
    SecretsGuardrail
    | PromptInjectionGuardrail
    | DenyListGuardrail
    | LimitsGuardrail
    | PiiGuardrail
    | WebhookGuardrail
    | JsonSchemaGuardrail,
    Field(discriminator="type"),
]


class ModelGuardrails(Strict):
    input: tuple[str, ...] = ()
    output: tuple[str, ...] = ()


class CacheConfig(Strict):
    """A response cache (`caches:`): exact (same request, byte for byte once canonical) or
    semantic (same context, a last user message that means the same)."""

    type: Literal["exact", "semantic"] = "exact"
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str | None = None  # backend: redis (redis://, rediss:// or unix://)
    ttl_s: int = Field(default=86400, ge=1)
    max_mb: float = Field(default=256, gt=0)  # backend: memory, per process (LRU past it)
    # deterministic: temperature 0, or a seed given; all: every request
    eligible: Literal["deterministic", "all"] = "deterministic"
    # semantic: cosine similarity of the MiniLM embeddings (0.90: see README, measured)
    threshold: float = Field(default=0.90, gt=0, le=1)
    verify_fraction: float = Field(default=0.0, ge=0, le=1)  # semantic hits checked upstream
    store_truncated: bool = False  # also keep answers cut off by max_tokens
    max_entry_kb: int = Field(default=1024, ge=1)  # larger answers are not stored
    timeout_ms: float = Field(default=50, gt=0, le=10_000)  # a store call past it: bypass
    max_partition: int = Field(default=2000, ge=1)  # semantic: entries per context, newest kept

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class ModelConfig(RoutingConfig):
    cache: str | None = None  # a name under `caches:`
    owned_by: str | None = None
    price: PriceConfig | None = None
    guardrails: ModelGuardrails = ModelGuardrails()


class ApiKey(Strict):
    id: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    guardrails: ModelGuardrails = ModelGuardrails()  # run after the model's own, for this key
    # whose cache entries this key reads and writes (default: its own id; keys naming the
    # same namespace share answers)
    cache_namespace: str | None = Field(default=None, min_length=1)
    team: str | None = None  # a name under `teams:`
    models: tuple[str, ...] = ()  # names or globs this key may use (empty: all)
    budgets: tuple[Budget, ...] = ()
    limits: Limits = Limits()  # unset fields: keys_defaults.limits
    expires_at: datetime | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class AuthConfig(Strict):
    keys: tuple[ApiKey, ...] = ()
    # keys made through the admin API alone (no policy key): require a key all the same
    require_keys: bool = False
    # the admin API (/admin/keys, /admin/teams, /admin/usage, /admin/audit): these keys'
    # sha256 (or GATEWAY_ADMIN_KEY in the environment); never a gateway key
    admin_keys: tuple[AdminKeyHash, ...] = ()
    allow_unauthenticated_remote: bool = False
    # /metrics: this key only (sha256 hex); unset (or empty), loopback clients only
    metrics_key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # /admin/* (cache stats and clearing): this key only; unset, loopback clients only
    admin_key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("metrics_key_sha256", "admin_key_sha256", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


class ServerConfig(Strict):
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)  # the request head, whole
    body_timeout_s: float = Field(default=60.0, gt=0, le=3600)  # the request body, whole
    max_connections: int = Field(default=1024, ge=1)  # open client connections, per process
    # on SIGTERM, requests still running this long after it end with server_shutting_down
    drain_timeout_s: float = Field(default=25.0, gt=0, le=3600)


class TelemetryConfig(Strict):
    duckdb: str | None = None  # path of the request log; none: no request log
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    retention_days: int | None = Field(default=None, ge=1)
    max_size_mb: int | None = Field(default=None, ge=1)  # oldest rows go first past this
    otel: bool = True  # spans over OTLP (when OTEL_* says where) and /metrics
    capture_content: bool = False  # prompts and answers, in their own table and spans
    content_retention_days: int = Field(default=7, ge=1)
    # rows kept in memory while neither the request log nor its spool can be written
    buffer_rows: int = Field(default=100_000, ge=100)


class Policy(Strict):
    version: Literal[1]
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    guardrails: dict[str, GuardrailConfig] = Field(default_factory=dict)
    caches: dict[str, CacheConfig] = Field(default_factory=dict)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    teams: dict[str, TeamConfig] = Field(default_factory=dict)
    keys_defaults: ScopeLimits = ScopeLimits()
    end_users: ScopeLimits = ScopeLimits()  # each end user (the request's `user`) alone
    limits: LimitSettings = LimitSettings()
    store: StoreConfig = StoreConfig()
    admin_keys: tuple[AdminKeyHash, ...] = ()  # as auth.admin_keys (either place works)
    feedback: FeedbackConfig = FeedbackConfig()
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)

    def may_bind(self, host: str) -> bool:
        """With no gateway keys, only loopback binds unless the policy opts in."""
        if self.auth.keys or self.auth.allow_unauthenticated_remote:
            return True
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
