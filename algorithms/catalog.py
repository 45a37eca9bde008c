"""The algorithm catalog: one :class:`CatalogEntry` per registered algorithm, read by the selector.

Entries live next to their classes (each algorithm module's ``CATALOG`` tuple); this module collects
them and fills each entry's hyper-parameters from its class's ``__init__`` defaults, so the catalog
never holds a second copy of them.
"""

from __future__ import annotations

import importlib
from typing import Any

from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import algorithm_class, algorithm_modules, all_algorithms

__all__ = ["CatalogEntry", "as_records", "entries", "family", "get_entry"]


def entries() -> list[CatalogEntry]:
    """All catalog entries, sorted by name."""
    registry = all_algorithms()
    found: list[CatalogEntry] = []
    for mod in algorithm_modules():
        for entry in getattr(importlib.import_module(mod), "CATALOG", ()):
            if entry.name not in registry:
                raise ValueError(f"{mod} has a catalog entry {entry.name!r} but no class registered under that "
                                 "name; decorate the class with @register(name)")
            found.append(entry.model_copy(update={"hyperparameters": registry[entry.name].default_params()}))
    return sorted(found, key=lambda e: e.name)


def family(*categories: str) -> tuple[str, ...]:
    """Names of the selectable algorithms that fit any of ``categories``, sorted (task templates use it)."""
    return tuple(e.name for e in entries() if any(e.fits(c) for c in categories))  # type: ignore[arg-type]


def get_entry(name: str) -> CatalogEntry:
    """The entry for ``name``; unknown names raise with the list of known ones.

    It reads the ``CATALOG`` of the one module that registers ``name`` (a training process needs one
    entry, and importing every algorithm module costs it about 1.2 s); the full list only for errors.
    """
    try:
        cls = algorithm_class(name)
    except ValueError:
        cls = None
    if cls is not None:
        for entry in getattr(importlib.import_module(cls.__module__), "CATALOG", ()):
            if entry.name == name:
                return entry.model_copy(update={"hyperparameters": cls.default_params()})
    by_name = {e.name: e for e in entries()}
    if name not in by_name:
        raise ValueError(f"no catalog entry {name!r}; known: {', '.join(by_name)}")
    return by_name[name]


def as_records() -> list[dict[str, Any]]:
    """JSON-able dicts of every entry (what the algorithm-selection agent reads).

    Each record adds ``privacy``: a sentence on what leaves a client beyond weights, so a selector that
    reads only prose still sees that a non-empty ``shares`` is a privacy cost.
    """
    return [{**e.model_dump(mode="json"), "privacy": _privacy(e.shares)} for e in entries()]


def _privacy(shares: tuple[str, ...]) -> str:
    if not shares:
        return "clients upload model weights only"
    return (f"PRIVACY COST: clients upload {', '.join(shares)} derived from their data, beyond model weights; "
            "choose it only when its benefit justifies that disclosure")
