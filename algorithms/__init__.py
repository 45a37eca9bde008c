"""algorithms: FL algorithms against one interface (:class:`algorithms.base.FLAlgorithm`).

``get_algorithm(name, **params)`` builds one by registry name; ``algorithms.catalog.as_records()``
describes them all for the selection agent.
"""

from algorithms.base import ClientContext, ClientUpdate, FLAlgorithm, Phase, ServerContext
from algorithms.registry import all_algorithms, get_algorithm, list_algorithms, register

__all__ = [
    "ClientContext",
    "ClientUpdate",
    "FLAlgorithm",
    "Phase",
    "ServerContext",
    "all_algorithms",
    "get_algorithm",
    "list_algorithms",
    "register",
]
