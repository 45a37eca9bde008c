"""The algorithm catalog: one :class:`CatalogEntry` per registered algorithm, read by the selector.

Entries live next to their classes (each algorithm module's ``CATALOG`` tuple); this module only
collects them.
"""

from __future__ import annotations

import importlib
from typing import Any

from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import algorithm_modules

__all__ = ["CatalogEntry", "as_records", "entries", "get_entry"]


def entries() -> list[CatalogEntry]:
    """All catalog entries, sorted by name."""
    found: list[CatalogEntry] = []
    for mod in algorithm_modules():
        found.extend(getattr(importlib.import_module(mod), "CATALOG", ()))
    return sorted(found, key=lambda e: e.name)


def get_entry(name: str) -> CatalogEntry:
    """The entry for ``name``; unknown names raise with the list of known ones."""
    by_name = {e.name: e for e in entries()}
    if name not in by_name:
        raise ValueError(f"no catalog entry {name!r}; known: {', '.join(by_name)}")
    return by_name[name]


def as_records() -> list[dict[str, Any]]:
    """JSON-able dicts of every entry (what the algorithm-selection agent reads)."""
    return [e.model_dump(mode="json") for e in entries()]
