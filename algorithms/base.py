"""Kept so that ``from algorithms.base import FLAlgorithm`` keeps working: the contract is :mod:`algorithms.api`."""

from algorithms.api import (
    PERSONAL_STATE,
    Batch,
    ClientContext,
    ClientUpdate,
    EvalContext,
    FLAlgorithm,
    Message,
    ModelInfo,
    Phase,
    ServerContext,
)

__all__ = [
    "PERSONAL_STATE",
    "Batch",
    "ClientContext",
    "ClientUpdate",
    "EvalContext",
    "FLAlgorithm",
    "Message",
    "ModelInfo",
    "Phase",
    "ServerContext",
]
