"""algorithms: FL algorithms against one message-shaped contract (:mod:`algorithms.api`).

``get_algorithm(name, **params)`` builds one by registry name; ``algorithms.catalog.as_records()``
describes them all for the selection agent. ``algorithms/README.md`` says how to add one.
"""

from algorithms.api import (
    Batch,
    ClientContext,
    ClientUpdate,
    EvalContext,
    FLAlgorithm,
    Message,
    Phase,
    ServerContext,
)

_REGISTRY_NAMES = ("all_algorithms", "get_algorithm", "list_algorithms", "register")


def __getattr__(name: str) -> object:
    """The registry's functions, imported on first use: an engine that imports the contract
    (``algorithms.api``) must not pull in the registry or any concrete algorithm."""
    if name in _REGISTRY_NAMES:
        from algorithms import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'algorithms' has no attribute {name!r}")

__all__ = [
    "Batch",
    "ClientContext",
    "ClientUpdate",
    "EvalContext",
    "FLAlgorithm",
    "Message",
    "Phase",
    "ServerContext",
    "all_algorithms",
    "get_algorithm",
    "list_algorithms",
    "register",
]
