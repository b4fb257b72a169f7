"""The model catalog as the proxy sees it: an in-memory snapshot of models and
their routes (catalog.snapshot), reloaded every CATALOG_REFRESH_SECONDS."""

from __future__ import annotations

from apiproxy.refreshing import Refreshing
from catalog.snapshot import CatalogModel, Route

__all__ = ["CatalogModel", "Route", "catalog"]


def _catalog_load() -> dict[str, CatalogModel]:
    from catalog.selectors import catalog_snapshot

    return {entry.public_id: entry for entry in catalog_snapshot()}


catalog: Refreshing[dict[str, CatalogModel]] = Refreshing(
    load=_catalog_load, empty={}, interval_setting="CATALOG_REFRESH_SECONDS"
)
