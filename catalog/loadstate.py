"""What a backend runs and which of its models are in memory: the part of
discovery (catalog.services.backend_discover_models, so every health check)
that routing needs to avoid model switches.

Ollama keeps only some models in GPU memory and loads the others on demand,
which takes seconds and may evict a model other users are working with. So:

- `Backend.software` is filled in when empty, from `owned_by` in the /v1/models
  answer discovery just read, or else from a probe of Ollama's GET
  {origin}/api/version (origin: the base URL without its /v1). Staff's choice
  in admin is never overwritten.
- For an Ollama backend, GET {origin}/api/ps (one request per check, with the
  discovery timeout) says which models it holds: each route's `loaded` is set
  True or False. A failure to read it leaves `loaded` as it was; it says
  nothing about the backend's health, which /v1/models decided.
- Every other backend keeps its models loaded: `loaded` stays None.
- The load times the proxy measured since the last check (catalog.loadtimes,
  in Redis) are copied into `Deployment.load_seconds`.

Writes are bulk UPDATEs of the rows that change, never a save() per route.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from catalog.backendget import BackendGetFailed, backend_json_get
from catalog.discovery import (
    ModelListInvalid,
    loaded_names_parse,
    model_name_normalise,
    software_from_model_list,
)
from catalog.loadtimes import load_seconds_read
from catalog.models import Backend, Deployment

logger = logging.getLogger(__name__)

# /api/ps and /api/version answers are a few hundred bytes.
NATIVE_ANSWER_MAX_BYTES = 1024 * 1024


def backend_load_state_refresh(
    *, backend: Backend, listing: Any, client: httpx.Client | None = None
) -> None:
    """Bring `backend.software` and its routes' `loaded` and `load_seconds` in
    line with what the backend and the proxy know (see the module docstring).
    `listing` is the /v1/models answer discovery has just read. Backend
    problems never raise."""
    software = backend.software or _software_detect(backend, listing, client)
    if software != Backend.Software.OLLAMA:
        # Staff may have changed what the backend runs: no stale load state.
        backend.deployments.filter(loaded__isnull=False).update(loaded=None)
        return
    rows = list(
        backend.deployments.values_list(
            "pk", "upstream_model", "loaded", "load_seconds"
        )
    )
    held = _held_read(backend, client)
    if held is not None:
        _loaded_set(rows, held)
    figures = load_seconds_read(backend_id=backend.pk)
    changed = [
        Deployment(pk=pk, load_seconds=figures[name])
        for pk, name, _, seconds in rows
        if name in figures and figures[name] != seconds
    ]
    if changed:
        Deployment.objects.bulk_update(changed, ["load_seconds"])


def _held_read(backend: Backend, client: httpx.Client | None) -> frozenset[str] | None:
    answer = _native_get(backend, "/api/ps", client)
    try:
        if answer is not None:
            return loaded_names_parse(answer)
    except ModelListInvalid:
        pass
    logger.warning("Backend %s: no usable /api/ps answer; load state kept", backend)
    return None


def _software_detect(
    backend: Backend, listing: Any, client: httpx.Client | None
) -> str:
    software = software_from_model_list(listing)
    if not software:
        answer = _native_get(backend, "/api/version", client)
        if isinstance(answer, dict) and isinstance(answer.get("version"), str):
            software = Backend.Software.OLLAMA
    if software:
        # Conditional: a value staff set meanwhile wins.
        Backend.objects.filter(pk=backend.pk, software="").update(software=software)
        backend.software = software
    return software


def _loaded_set(
    rows: list[tuple[int, str, bool | None, Any]], held: frozenset[str]
) -> None:
    changes: dict[bool, list[int]] = {True: [], False: []}
    for pk, name, was, _ in rows:
        now = model_name_normalise(name) in held
        if was is not now:
            changes[now].append(pk)
    for value, pks in changes.items():
        if pks:
            Deployment.objects.filter(pk__in=pks).update(loaded=value)


def _origin(backend: Backend) -> str:
    return backend.base_url.removesuffix("/v1")


def _native_get(backend: Backend, path: str, client: httpx.Client | None) -> Any:
    """The JSON answer to one of Ollama's own GET endpoints, or None when there
    is none (refused, timeout, not 200, too large, not JSON). Same origin as
    /v1/models, so the key stays with its host."""
    try:
        return backend_json_get(
            backend,
            _origin(backend) + path,
            client=client,
            max_bytes=NATIVE_ANSWER_MAX_BYTES,
        )
    except BackendGetFailed:
        return None
