"""The model catalog as the proxy sees it: an in-memory snapshot of models and
their routes, reloaded off the request path every few seconds.

The hot path only reads a dict; the database is read by a background refresh
(through a thread), so a slow database never stalls a token stream.
"""

from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from apiproxy.snapshot import CatalogModel, Route

__all__ = ["Catalog", "CatalogModel", "Route", "catalog"]

logger = logging.getLogger(__name__)


def _catalog_load() -> dict[str, CatalogModel]:
    from apiproxy.selectors import catalog_snapshot

    close_old_connections()
    try:
        return {entry.public_id: entry for entry in catalog_snapshot()}
    finally:
        close_old_connections()


class Catalog:
    """Single-flight reloads without an asyncio.Lock, which would bind the
    module-level catalog to the first event loop that used it."""

    def __init__(self) -> None:
        self.models: dict[str, CatalogModel] = {}
        self.loaded_at = 0.0
        self._reloading = False

    def invalidate(self) -> None:
        self.loaded_at = 0.0

    async def current(self) -> dict[str, CatalogModel]:
        """The snapshot; reloaded when older than CATALOG_REFRESH_SECONDS. While
        one request reloads, the others keep using the previous snapshot."""
        if time.monotonic() - self.loaded_at < settings.CATALOG_REFRESH_SECONDS:
            return self.models
        if self._reloading:
            while self._reloading and not self.loaded_at:
                await asyncio.sleep(0.005)
            return self.models
        self._reloading = True
        try:
            self.models = await sync_to_async(_catalog_load, thread_sensitive=False)()
        except Exception:
            if not self.models:
                raise
            logger.exception("catalog reload failed; serving the last snapshot")
        finally:
            self._reloading = False
        self.loaded_at = time.monotonic()
        return self.models


catalog = Catalog()
