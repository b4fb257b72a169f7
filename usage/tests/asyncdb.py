"""ORM calls from async tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

T = TypeVar("T")


async def db(function: Callable[..., T], /, **kwargs: Any) -> T:
    """Run ORM code from an async test, closing the thread's connection after
    (a connection left open keeps the test database from being dropped)."""

    def run() -> T:
        try:
            return function(**kwargs)
        finally:
            connection.close()

    return await sync_to_async(run)()
