"""Algorithms by name: ``@register("fedprox")``, ``get_algorithm(name, **params)``, ``all_algorithms()``.

Every module in the ``algorithms`` package other than the infrastructure modules below is imported
on the first listing, so adding an algorithm is one new module; nothing else needs editing. A lookup
by name (:func:`algorithm_class`) first imports only the module of that name (``algorithms/fedbn.py``
for ``fedbn``) and scans the package only when that module does not register it: importing all 45
modules costs about 1.2 s, and every training job and Flower app process looks up one algorithm.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from algorithms.api import FLAlgorithm

__all__ = ["algorithm_class", "algorithm_modules", "all_algorithms", "get_algorithm", "list_algorithms", "register"]

#: Modules of the package that hold no algorithm.
INFRASTRUCTURE = frozenset({"aggregation", "api", "base", "catalog", "catalog_entry", "registry", "regularisers",
                            "testing", "wire"})

_REGISTRY: dict[str, type[FLAlgorithm]] = {}
_T = TypeVar("_T", bound=type[FLAlgorithm])


def register(name: str) -> Callable[[_T], _T]:
    """Class decorator: make ``cls`` available as ``get_algorithm(name)`` and set ``cls.name``."""

    def deco(cls: _T) -> _T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"algorithm name {name!r} is registered twice ({_REGISTRY[name].__name__}, "
                             f"{cls.__name__}); pick another name")
        if not issubclass(cls, FLAlgorithm):
            raise TypeError(f"{cls.__name__} must subclass algorithms.api.FLAlgorithm")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def algorithm_modules() -> list[str]:
    """Fully qualified names of the algorithm modules, imported."""
    import algorithms

    names = [
        f"algorithms.{m.name}" for m in pkgutil.iter_modules(algorithms.__path__)
        if m.name not in INFRASTRUCTURE and not m.name.startswith("_")
    ]
    for n in names:
        importlib.import_module(n)
    return sorted(names)


def all_algorithms() -> dict[str, type[FLAlgorithm]]:
    """Registered name -> class, for every algorithm module in the package."""
    algorithm_modules()
    return dict(sorted(_REGISTRY.items()))


def list_algorithms() -> list[str]:
    """Registered names, sorted."""
    return list(all_algorithms())


def _import_named(key: str) -> None:
    """Import ``algorithms.<key>`` if the package has a module of that name (where most algorithms live)."""
    if key in INFRASTRUCTURE or key.startswith("_") or not key.isidentifier():
        return
    try:
        importlib.import_module(f"algorithms.{key}")
    except ModuleNotFoundError as exc:
        if exc.name != f"algorithms.{key}":
            raise  # the module exists and one of its imports is missing: a real error


def algorithm_class(name: str) -> type[FLAlgorithm]:
    """The class registered as ``name`` (case and surrounding spaces ignored).

    Raises:
        ValueError: unknown name (the message lists the registered names).
    """
    key = name.strip().lower()
    if key not in _REGISTRY:
        _import_named(key)
    if key not in _REGISTRY:
        registry = all_algorithms()  # a module may register another name (fedopt: fedadam, ...)
        if key not in registry:
            raise ValueError(f"unknown algorithm {name!r}; registered: {', '.join(registry)}")
    return _REGISTRY[key]


def get_algorithm(name: str, **params: Any) -> FLAlgorithm:
    """An instance of the algorithm registered as ``name`` with ``params`` overriding its defaults.

    Raises:
        ValueError: unknown name (the message lists the registered names) or unknown parameter.
    """
    algo = algorithm_class(name)()
    algo.set_params(**params)
    algo.validate()
    return algo
