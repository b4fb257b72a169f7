"""The catalog as plain frozen data, for the proxy's in-memory cache and the
access rule (catalog.access).

Built by catalog.selectors (catalog_snapshot, limit_tables) off the request
path; nothing here
touches the ORM, so the hot path reads attributes and nothing else. `as_dict`
gives JSON-ready dicts for anything that must cross a process boundary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Route:
    """One backend serving a model: where to send it and under which name."""

    backend_id: int
    backend_name: str
    base_url: str  # ends in /v1 (or the backend's own OpenAI path), no slash
    # Plaintext for the Authorization header; kept out of repr and so of logs.
    api_key: str | None = field(repr=False)
    upstream_model: str
    max_concurrency: int
    healthy: bool
    pool: str = "shared"
    software: str = ""  # catalog.models.Backend.Software: "", vllm, ollama, ...
    # Whether the backend holds the model in memory (Ollama's /api/ps at the
    # last check); None where the backend does not say, i.e. always loaded.
    loaded: bool | None = None
    load_seconds: float | None = None  # the last measured load, if any


@dataclass(frozen=True, slots=True)
class CatalogModel:
    public_id: str
    context_window: int
    max_output_tokens: int | None
    capabilities: frozenset[str]  # of chat, completions, embeddings, ...
    everyone: bool
    group_ids: frozenset[int]  # who may use it when not everyone
    routes: tuple[Route, ...]  # enabled, served, on enabled backends
    created: int  # unix time, for the OpenAI `created` field
    owned_by: str
    display_name: str = ""
    quota_weight: float = 1.0
    recommended_params: dict[str, Any] = field(default_factory=dict)  # read-only
    # An alias serves its target's routes under its own name, with these
    # defaults merged into each request (read-only).
    alias_of: str = ""
    default_params: dict[str, Any] = field(default_factory=dict)
    system_prompt_prefix: str = ""
    embedding_dimensions: int | None = None

    @property
    def ready(self) -> bool:
        """Whether a request would start without the model being loaded
        first: some route holds it, or no route's backend loads on demand."""
        return any(route.loaded is not False for route in self.routes)

    @property
    def load_seconds(self) -> float | None:
        """The last measured load time among routes that would load first."""
        measured = [r.load_seconds for r in self.routes if r.load_seconds]
        return max(measured) if measured else None

    def allowed_for(self, group_ids: Iterable[int]) -> bool:
        return self.everyone or not self.group_ids.isdisjoint(group_ids)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["capabilities"] = sorted(self.capabilities)
        data["group_ids"] = sorted(self.group_ids)
        return data


Pair = tuple[int | None, int | None]


@dataclass(frozen=True)
class LimitTables:
    """Every limit override and the service classes' groups, as plain dicts
    (small tables: one row per group, user or key that has an override)."""

    users: dict[int, Pair] = field(default_factory=dict)
    groups: dict[int, Pair] = field(default_factory=dict)
    keys: dict[int, Pair] = field(default_factory=dict)
    dedicated_groups: frozenset[int] = frozenset()
    # Groups users may ask to join (Settings > Access).
    requestable_groups: frozenset[int] = frozenset()
