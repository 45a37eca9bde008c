"""Loss terms several methods share, as pure functions of a model and reference weights.

FedProx, Ditto and FedDyn all pull the trained weights towards the weights a client received; the
term is written once here so that each method states only its own weight on it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from algorithms.aggregation import StateDict

__all__ = ["proximal_term"]


def proximal_term(model: nn.Module, reference: StateDict, keys: Iterable[str] | None = None) -> Tensor:
    """``sum ||p - reference[p]||^2`` over the trainable parameters of ``model`` (no 1/2 factor).

    Args:
        model: the model being trained.
        reference: weights to stay near (the received global weights), by state-dict key.
        keys: restrict to these parameter names (default: every parameter that requires grad and
            has a reference value).
    """
    wanted = None if keys is None else set(keys)
    device = next(iter(reference.values())).device if reference else None
    total = torch.zeros((), device=device)
    for name, p in model.named_parameters():
        if p.requires_grad and name in reference and (wanted is None or name in wanted):
            total = total + (p - reference[name]).pow(2).sum()
    return total
