"""The DuckDB request log's schema, versioned: `migrate` upgrades any older file in place."""

from __future__ import annotations

import duckdb

REQUEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "VARCHAR NOT NULL"),
    ("trace_id", "VARCHAR"),
    ("started_at", "TIMESTAMP NOT NULL"),  # UTC
    ("latency_ms", "FLOAT"),
    ("ttfb_ms", "FLOAT"),  # time to first chunk (streams) or to the whole body
    ("upstream_ms", "FLOAT"),
    ("overhead_ms", "FLOAT"),
    ("method", "VARCHAR"),
    ("path", "VARCHAR"),
    ("operation", "VARCHAR"),
    ("stream", "BOOLEAN"),
    ("model", "VARCHAR"),
    ("provider", "VARCHAR"),
    ("upstream_model", "VARCHAR"),
    ("response_model", "VARCHAR"),
    ("response_id", "VARCHAR"),
    ("status", "SMALLINT"),
    ("error_type", "VARCHAR"),
    ("finish_reasons", "VARCHAR"),
    ("input_tokens", "INTEGER"),
    ("output_tokens", "INTEGER"),
    ("cached_input_tokens", "INTEGER"),
    ("reasoning_tokens", "INTEGER"),
    ("key_id", "VARCHAR"),
    ("end_user", "VARCHAR"),
    ("client_disconnected", "BOOLEAN"),
    ("attempts", "TINYINT"),
    # v2
    ("span_id", "VARCHAR"),
    ("cache_write_tokens", "INTEGER"),
    ("tokens_estimated", "BOOLEAN"),
    ("cost_usd", "DECIMAL(18, 10)"),
    ("cost_input_usd", "DECIMAL(18, 10)"),
    ("cost_output_usd", "DECIMAL(18, 10)"),
    ("price_source", "VARCHAR"),
    ("cache_status", "VARCHAR"),
    ("guardrails", "VARCHAR"),
    ("prompt_name", "VARCHAR"),
    ("prompt_version", "VARCHAR"),
    # v4
    ("tags", "VARCHAR"),  # the request's `metadata` object, as JSON
    # v5
    ("cache_age_s", "FLOAT"),  # a cache hit: how old the entry was
    ("saved_usd", "DECIMAL(18, 10)"),  # a cache hit: the answer's cost at today's prices
    # v6
    ("strategy", "VARCHAR"),  # the model's routing strategy
    ("target", "VARCHAR"),  # the target that answered: provider/upstream_model
    # v7
    ("experiment", "VARCHAR"),  # the prompt experiment that picked prompt_version
    ("arm", "VARCHAR"),  # its arm (a version or a label, as the policy names it)
    ("team", "VARCHAR"),  # the gateway key's team
)
V1_COLUMNS = 27
V2_COLUMNS = 38
V4_COLUMNS = 39
V5_COLUMNS = 41
V6_COLUMNS = 43
ATTEMPT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "VARCHAR NOT NULL"),
    ("attempt", "TINYINT"),
    ("provider", "VARCHAR"),
    ("upstream_model", "VARCHAR"),
    ("status", "SMALLINT"),
    ("latency_ms", "FLOAT"),
    ("error", "VARCHAR"),
    # v6
    ("reason", "VARCHAR"),  # ok | retry | fallback | failed | timeout_first_chunk
    ("backoff_ms", "FLOAT"),  # waited before it (backoff or the upstream's Retry-After)
    ("breaker", "VARCHAR"),  # the target's circuit breaker after it
)
ATTEMPT_V1_COLUMNS = 7


# a client's verdict on a request (POST /v1/feedback): the latest per request and metric
FEEDBACK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "VARCHAR NOT NULL"),
    ("metric", "VARCHAR NOT NULL"),
    ("value", "DOUBLE"),  # boolean 1/0, or the number
    ("category", "VARCHAR"),  # category metrics
    ("comment", "VARCHAR"),
    ("key_id", "VARCHAR"),
    ("created_at", "TIMESTAMP NOT NULL"),  # UTC
    ("feedback_id", "VARCHAR NOT NULL"),
)


CONTENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("request_id", "VARCHAR NOT NULL"),
    ("started_at", "TIMESTAMP NOT NULL"),
    ("input", "VARCHAR"),  # the request's messages (or prompt/input) as JSON
    ("output", "VARCHAR"),  # the answer's text
)


def _create(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    return f"CREATE TABLE IF NOT EXISTS {name} (" + ", ".join(f"{c} {t}" for c, t in columns) + ")"


# Each entry upgrades the file from the version before it; append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        _create("requests", REQUEST_COLUMNS[:V1_COLUMNS]),
        _create("attempts", ATTEMPT_COLUMNS[:ATTEMPT_V1_COLUMNS]),
    ),
    tuple(
        f"ALTER TABLE requests ADD COLUMN {c} {t}"
        for c, t in REQUEST_COLUMNS[V1_COLUMNS:V2_COLUMNS]
    ),
    (_create("contents", CONTENT_COLUMNS),),
    tuple(
        f"ALTER TABLE requests ADD COLUMN {c} {t}"
        for c, t in REQUEST_COLUMNS[V2_COLUMNS:V4_COLUMNS]
    ),
    tuple(
        f"ALTER TABLE requests ADD COLUMN {c} {t}"
        for c, t in REQUEST_COLUMNS[V4_COLUMNS:V5_COLUMNS]
    ),
    tuple(
        f"ALTER TABLE requests ADD COLUMN {c} {t}"
        for c, t in REQUEST_COLUMNS[V5_COLUMNS:V6_COLUMNS]
    )
    + tuple(
        f"ALTER TABLE attempts ADD COLUMN {c} {t}" for c, t in ATTEMPT_COLUMNS[ATTEMPT_V1_COLUMNS:]
    ),
    (
        *(f"ALTER TABLE requests ADD COLUMN {c} {t}" for c, t in REQUEST_COLUMNS[V6_COLUMNS:]),
        _create("feedback", FEEDBACK_COLUMNS)[:-1] + ", PRIMARY KEY (request_id, metric))",
        _create("feedback_history", FEEDBACK_COLUMNS),
    ),
)
VERSION = len(MIGRATIONS)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the file to the current schema; returns the version it was at."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = con.execute("SELECT max(version) FROM schema_version").fetchone()
    current = int(row[0]) if row and row[0] is not None else 0
    if current > VERSION:
        raise RuntimeError(f"request log schema v{current} is newer than this gateway (v{VERSION})")
    for version in range(current + 1, VERSION + 1):
        con.execute("BEGIN")
        for statement in MIGRATIONS[version - 1]:
            con.execute(statement)
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
        con.execute("COMMIT")
    return current
