"""Pure functions on state dicts that aggregation hooks are built from.

Kept apart from the algorithm classes (as Flower's ``strategy_utils.py``) so each piece of arithmetic
is tested once and reused by every algorithm that needs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

StateDict = dict[str, Tensor]

__all__ = ["InconsistentUpdates", "StateDict", "add_scaled", "subtract", "weighted_mean"]


class InconsistentUpdates(ValueError):
    """Client updates that cannot be aggregated together (different keys or shapes)."""


def weighted_mean(states: Sequence[StateDict], weights: Sequence[float]) -> StateDict:
    """Weighted mean of state dicts, key by key.

    Floating tensors are averaged in float64 and cast back, so the result does not depend on the
    order of ``states``; integer tensors (e.g. ``num_batches_tracked``) are averaged then rounded.

    Raises:
        InconsistentUpdates: no states, non-positive total weight, or differing keys/shapes.
    """
    if not states:
        raise InconsistentUpdates("nothing to aggregate: no client returned an update")
    if len(states) != len(weights):
        raise InconsistentUpdates(f"{len(states)} states but {len(weights)} weights")
    total = float(sum(weights))
    if total <= 0:
        raise InconsistentUpdates(f"total weight must be positive, got {total}; check num_samples")
    keys = list(states[0])
    for s in states[1:]:
        if list(s) != keys:
            raise InconsistentUpdates("clients returned different state-dict keys; same model needed")
    out: StateDict = {}
    for k in keys:
        ref = states[0][k]
        if any(s[k].shape != ref.shape for s in states):
            raise InconsistentUpdates(f"shape mismatch for {k!r} across clients")
        acc = torch.zeros(ref.shape, dtype=torch.float64, device=ref.device)
        for s, w in zip(states, weights):
            acc += s[k].to(torch.float64) * (float(w) / total)
        out[k] = acc.to(ref.dtype) if ref.is_floating_point() else acc.round().to(ref.dtype)
    return out


def subtract(a: StateDict, b: StateDict, keys: Sequence[str] | None = None) -> StateDict:
    """``a - b`` for ``keys`` (default: the keys of ``a``)."""
    return {k: a[k] - b[k] for k in (keys if keys is not None else a)}


def add_scaled(a: StateDict, b: StateDict, scale: float) -> StateDict:
    """``a + scale * b`` for the keys of ``b``; other keys of ``a`` are copied unchanged."""
    out = dict(a)
    for k, v in b.items():
        out[k] = a[k] + scale * v
    return out
