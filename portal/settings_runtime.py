"""Portico's runtime settings, read from the environment like the rest of
portal/settings.py (which imports everything here): the proxy's limits and
queues, metering and quotas, the catalog's discovery, operations. Every
variable is documented in docker/.env.example.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from portal.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_origins,
    env_str,
)
from portal.logformat import logging_config

# --- API proxy (apiproxy) ---
# Seconds to connect to a backend, and of silence from it before a 504 (or an
# error event mid-stream).
BACKEND_CONNECT_TIMEOUT = env_float("BACKEND_CONNECT_TIMEOUT", 5.0, minimum=0.1)
BACKEND_READ_TIMEOUT = env_float("BACKEND_READ_TIMEOUT", 300.0, minimum=0.1)
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 25 * 1024 * 1024, minimum=1024)
# Seconds a client has to send a whole request body; a slower one gets 408.
REQUEST_BODY_TIMEOUT = env_float("REQUEST_BODY_TIMEOUT", 60.0, minimum=1.0)
# The largest chat turn the browser door reads (text and up to four images).
CHAT_MAX_TURN_BYTES = env_int("CHAT_MAX_TURN_BYTES", 16 * 1024 * 1024, minimum=1024)
# Requests of one user refused before the rate limiter (unknown model, prompt
# too long, bad body) per minute; beyond it they are refused with 429 at once.
REFUSALS_PER_MINUTE = env_int("REFUSALS_PER_MINUTE", 60, minimum=1)
# Unknown or revoked API keys one client address may present per minute
# before it gets 429 without a database look-up.
AUTH_FAILURES_PER_MINUTE = env_int("AUTH_FAILURES_PER_MINUTE", 60, minimum=1)
# How stale the proxy's in-memory model catalog may get.
CATALOG_REFRESH_SECONDS = env_float("CATALOG_REFRESH_SECONDS", 5.0, minimum=0.0)
# Route to a backend that already holds the model (Ollama loads on demand; a
# switch takes seconds and evicts others' model): apiproxy.routing. Off: least
# in flight, as for every other backend (for comparisons).
ROUTING_PREFER_LOADED = env_bool("ROUTING_PREFER_LOADED", True)
# Remote media URLs in requests (apiproxy.mediafetch, docs/media.md): Portico
# fetches each one itself, from public addresses only, and hands it to the
# backend inline. Off: inline data URLs only, as before. Per file: at most
# MEDIA_FETCH_MAX_BYTES; per request: MEDIA_FETCH_MAX_URLS URLs, all fetched
# within MEDIA_FETCH_TIMEOUT seconds. MEDIA_FETCH_ALLOW_NETWORKS exempts
# networks (CIDR, comma-separated) from the address rules.
MEDIA_FETCH = env_bool("MEDIA_FETCH", True)
MEDIA_FETCH_MAX_BYTES = env_int("MEDIA_FETCH_MAX_BYTES", 20 * 1024 * 1024, minimum=1)
MEDIA_FETCH_TIMEOUT = env_float("MEDIA_FETCH_TIMEOUT", 10.0, minimum=0.1)
MEDIA_FETCH_MAX_URLS = env_int("MEDIA_FETCH_MAX_URLS", 16, minimum=1, maximum=256)
MEDIA_FETCH_ALLOW_NETWORKS = env_networks("MEDIA_FETCH_ALLOW_NETWORKS", [])
# Origins whose pages may call the API door with a key (CORS, apiproxy.cors):
# "*" (any, as OpenAI's API), a comma-separated list, or "off". Never with
# credentials; the browser door is same-origin and unaffected.
_API_CORS = env_list("API_CORS_ORIGINS", ["*"])
API_CORS_ORIGINS: tuple[str, ...] = (
    ()
    if [origin.lower() for origin in _API_CORS] in (["off"], ["none"])
    else ("*",)
    if "*" in _API_CORS
    else tuple(env_origins("API_CORS_ORIGINS", []))
)

# Rate limits (apiproxy.ratelimit). Site defaults per user; groups, users and
# keys override them in admin. 0 means unlimited.
DEFAULT_USER_RPM = env_int("DEFAULT_USER_RPM", 120, minimum=0)
DEFAULT_USER_TPM = env_int("DEFAULT_USER_TPM", 200_000, minimum=0)
# Share of each user's budget only the browser chat may use.
BROWSER_RESERVED_SHARE = env_float("BROWSER_RESERVED_SHARE", 0.2, minimum=0.0)
if BROWSER_RESERVED_SHARE >= 1:
    raise ImproperlyConfigured("BROWSER_RESERVED_SHARE must be below 1")
LIMITS_REFRESH_SECONDS = env_float("LIMITS_REFRESH_SECONDS", 5.0, minimum=0.0)
# Server processes sharing the limits: while Redis is down each enforces
# limit / WEB_PROCESSES on its own.
WEB_PROCESSES = env_int("WEB_PROCESSES", 1, minimum=1)
LIMITER_RETRY_SECONDS = env_float("LIMITER_RETRY_SECONDS", 2.0, minimum=0.1)
REDIS_HOT_PATH_TIMEOUT = env_float("REDIS_HOT_PATH_TIMEOUT", 0.25, minimum=0.01)
# Seconds a page, command or Celery task waits for Redis (portal.redisconn).
REDIS_SYNC_TIMEOUT = env_float("REDIS_SYNC_TIMEOUT", 2.0, minimum=0.1)

# Per-model queues (apiproxy.queueing): seconds a request may wait for a slot,
# how many may wait per model, and the lease that frees a crashed process's slots.
QUEUE_TIMEOUT = env_float("QUEUE_TIMEOUT", 120.0, minimum=0.1)
QUEUE_MAX_WAITING = env_int("QUEUE_MAX_WAITING", 200, minimum=0)
# Of those, how many one user may hold per model (429 beyond).
QUEUE_MAX_WAITING_PER_USER = env_int("QUEUE_MAX_WAITING_PER_USER", 20, minimum=1)
QUEUE_LEASE_SECONDS = env_float("QUEUE_LEASE_SECONDS", 30.0, minimum=1.0)
QUEUE_POLL_SECONDS = env_float("QUEUE_POLL_SECONDS", 0.05, minimum=0.005)
QUEUE_RETRY_AFTER = env_int("QUEUE_RETRY_AFTER", 10, minimum=1)

# --- Usage metering (usage) ---
USAGE_FLUSH_SECONDS = env_float("USAGE_FLUSH_SECONDS", 1.0, minimum=0.05)
USAGE_FLUSH_BATCH = env_int("USAGE_FLUSH_BATCH", 500, minimum=1)
# --- Usage buffer bound, rollups, retention and quotas (usage) ---
# Records a process keeps in memory while the database is unreachable; beyond
# this they are spooled to DATA_DIR/usage-spool/ and written when it returns.
USAGE_BUFFER_MAX_RECORDS = env_int("USAGE_BUFFER_MAX_RECORDS", 50_000, minimum=1)
# Longest wait between two write attempts while the database is unreachable.
USAGE_FLUSH_RETRY_MAX_SECONDS = env_float(
    "USAGE_FLUSH_RETRY_MAX_SECONDS", 30.0, minimum=0.05
)
# Raw usage records older than this many days are deleted once rolled up;
# hourly and daily totals are kept.
USAGE_RETENTION_DAYS = env_int("USAGE_RETENTION_DAYS", 90, minimum=1)
# Seconds between rollup runs (Celery beat; `manage.py rollupusage` by hand).
USAGE_ROLLUP_INTERVAL_SECONDS = env_int(
    "USAGE_ROLLUP_INTERVAL_SECONDS", 300, minimum=10
)
# How stale a proxy process's copy of the quota table may get.
USAGE_QUOTA_REFRESH_SECONDS = env_float("USAGE_QUOTA_REFRESH_SECONDS", 5.0, minimum=0.0)
# How often each process reloads projects' allocations, dates, caps and
# members (projects.allocation): a changed grant applies within this.
PROJECT_ALLOCATION_REFRESH_SECONDS = env_float(
    "PROJECT_ALLOCATION_REFRESH_SECONDS", 1.0, minimum=0.0
)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {}
CELERY_BEAT_SCHEDULE["usage-rollup"] = {
    "task": "usage.rollup",
    "schedule": float(USAGE_ROLLUP_INTERVAL_SECONDS),
    "options": {"expires": float(USAGE_ROLLUP_INTERVAL_SECONDS)},
}
CELERY_BEAT_SCHEDULE["usage-prune"] = {
    "task": "usage.prune",
    "schedule": 3600.0,
    "options": {"expires": 3600.0},
}
# --- end usage buffer, rollups, retention and quotas -------------------------
# --- Benchmark only (bench/run.py) ---
# USAGE_METERING=false makes the meter drop every outcome, so that the bench
# can measure what metering costs. Never in production: nothing is billed.
USAGE_METERING = env_bool("USAGE_METERING", True)
# --- end benchmark only ---

# --- Model catalog and discovery (catalog) ---
# Discovery asks a backend for GET /v1/models, giving it this long. It runs as
# part of every backend health check (BACKEND_CHECK_INTERVAL_SECONDS below),
# and by hand with `manage.py discovermodels`.
MODEL_DISCOVERY_TIMEOUT_SECONDS = env_int(
    "MODEL_DISCOVERY_TIMEOUT_SECONDS", 10, minimum=1, maximum=120
)
# Context window given to a discovered model whose backend does not report one.
MODEL_DEFAULT_CONTEXT_WINDOW = env_int(
    "MODEL_DEFAULT_CONTEXT_WINDOW", 8192, minimum=256
)
# --- end model catalog -----------------------------------------------------

# --- Operations: probes, metrics, backend checks, logs, shutdown (ops) ---
# Who may read /metrics: clients in these networks (comma-separated CIDR), or
# anyone sending "Authorization: Bearer <METRICS_TOKEN>" (empty: no token).
# Behind a reverse proxy the client is the proxy unless uvicorn trusts its
# X-Forwarded-For (FORWARDED_ALLOW_IPS); docs/deploy.md shows both set-ups.
METRICS_ALLOWED_NETWORKS = env_networks(
    "METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"]
)
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# /readyz gives the database and Redis this long to answer.
READYZ_TIMEOUT_SECONDS = env_float("READYZ_TIMEOUT_SECONDS", 2.0, minimum=0.1)
# Every enabled backend is checked this often (Celery beat; `manage.py
# checkbackends` by hand): GET /v1/models, which also refreshes its models. A
# failed check takes it out of rotation at once, a passing one brings it back.
BACKEND_CHECK_INTERVAL_SECONDS = env_int(
    "BACKEND_CHECK_INTERVAL_SECONDS", 30, minimum=5
)
# Staff are e-mailed that a backend is down after this many failed checks in a
# row (one slow answer is no emergency), and once more when it is back.
BACKEND_ALERT_AFTER = env_int("BACKEND_ALERT_AFTER", 2, minimum=1)
# Where those e-mails go; empty: every active staff user with an address.
ALERT_EMAILS = env_list("ALERT_EMAILS", [])
CELERY_BEAT_SCHEDULE["ops-check-backends"] = {
    "task": "ops.check_backends",
    "schedule": float(BACKEND_CHECK_INTERVAL_SECONDS),
    # A run that waited a whole interval in the queue is superseded by the next.
    "options": {"expires": float(BACKEND_CHECK_INTERVAL_SECONDS)},
}
# One log line per API request (ids, model, status, tokens, timings; never a
# key, prompt or answer), and the format of every log line: plain or json.
LOG_REQUESTS = env_bool("LOG_REQUESTS", True)
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
# Seconds a server lets running requests (streams) finish after SIGTERM before
# it cuts them; the usage buffer is drained after that. Used by `make run`
# and the image (docker/entrypoint.sh hands it to uvicorn).
SHUTDOWN_GRACE = env_int("SHUTDOWN_GRACE", 30, minimum=0)
# --- end operations --------------------------------------------------------

LOG_LEVEL = env_choice(
    "LOG_LEVEL", "INFO", ("debug", "info", "warning", "error")
).upper()
LOGGING = logging_config(level=LOG_LEVEL, log_format=LOG_FORMAT)

# --- OpenAPI description of the portal's JSON API (drf-spectacular) ---
# /api/schema/ describes the self-service API (/api/keys/, /api/conversations/)
# to logged-in users only: it is a map, and outsiders need none. The proxy's
# /v1/ is described by hand in docs/openapi-v1.yaml. REST_FRAMEWORK's
# DEFAULT_SCHEMA_CLASS (portal/settings.py) must name drf-spectacular's AutoSchema.
SPECTACULAR_SETTINGS = {
    "TITLE": "Portico self-service API",
    "DESCRIPTION": (
        "API keys and chat conversations of the logged-in user. Session "
        "authentication with CSRF; errors read "
        '{"error": {"code", "message", ...}}.'
    ),
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # The schema endpoint does not describe itself.
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components, so read-only fields are not
    # offered as input.
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/",
}
# --- end OpenAPI -----------------------------------------------------------
