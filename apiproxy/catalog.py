"""The model catalog as the proxy sees it: an in-memory snapshot of models and
their routes (catalog.snapshot), reloaded every CATALOG_REFRESH_SECONDS."""

from __future__ import annotations

from catalog.selectors import catalog_snapshot
from catalog.snapshot import CatalogModel, Route
from portal.refreshing import Refreshing

__all__ = ["CatalogModel", "Route", "catalog"]


def _catalog_load() -> dict[str, CatalogModel]:
    return {entry.public_id: entry for entry in catalog_snapshot()}


catalog: Refreshing[dict[str, CatalogModel]] = Refreshing(
    load=_catalog_load, empty={}, interval_setting="CATALOG_REFRESH_SECONDS"
)
