"""The one way async code runs synchronous database work.

The work runs in a worker thread (never on the event loop), and the thread's
connection is checked before and after, as Django does around each request:
a connection that broke or outlived CONN_MAX_AGE is closed rather than reused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
T = TypeVar("T")


def db_thread(function: Callable[P, T]) -> Callable[P, T]:
    """`function` wrapped for a worker thread that may keep its connection."""

    @wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return run


async def in_db_thread(
    function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Await `function(*args, **kwargs)` run in a worker thread."""
    return await sync_to_async(db_thread(function), thread_sensitive=False)(
        *args, **kwargs
    )
