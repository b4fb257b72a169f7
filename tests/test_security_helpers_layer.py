"""portal.csvsafe and portal.accesslog sit in the bottom layer (portal
infrastructure): every app may use them, so they import nothing from the apps,
nor from the rest of portal."""

from __future__ import annotations

import grimp
import pytest

APPS = ("portal", "accounts", "catalog", "usage", "apiproxy", "chat", "ops")


@pytest.mark.parametrize("module", ["portal.csvsafe", "portal.accesslog"])
def test_the_helper_imports_nothing_of_portico(module: str) -> None:
    graph = grimp.build_graph(*APPS, cache_dir=None)
    assert graph.find_modules_directly_imported_by(module) == set()
