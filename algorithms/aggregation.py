"""Pure functions on state dicts that aggregation hooks are built from.

Kept apart from the algorithm classes (as Flower's ``strategy_utils.py``) so each piece of arithmetic
is tested once and reused by every algorithm that needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

StateDict = dict[str, Tensor]

__all__ = ["InconsistentUpdates", "StateDict", "add_scaled", "clone_state", "mean_then_step", "subtract", "weighted_mean"]


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


def clone_state(state: StateDict) -> StateDict:
    """A detached copy of a state dict (tensors are cloned, so later in-place updates do not leak)."""
    return {k: v.detach().clone() for k, v in state.items()}


def subtract(a: StateDict, b: StateDict, keys: Sequence[str] | None = None) -> StateDict:
    """``a - b`` for ``keys`` (default: the keys of ``a``)."""
    return {k: a[k] - b[k] for k in (keys if keys is not None else a)}


def add_scaled(a: StateDict, b: StateDict, scale: float) -> StateDict:
    """``a + scale * b`` for the keys of ``b``; other keys of ``a`` are copied unchanged."""
    out = dict(a)
    for k, v in b.items():
        out[k] = a[k] + scale * v
    return out


def mean_then_step(
    global_state: StateDict, combined: StateDict, keys: Sequence[str],
    step: Callable[[str, Tensor, Tensor], Tensor],
) -> StateDict:
    """The combined weights with ``keys`` replaced by ``step(key, global_value, combined_value)``.

    The shape every server optimiser shares (FedAvgM, FedAdam/Yogi/Adagrad, SCAFFOLD's global
    step, FedDyn's correction): the clients' mean is taken first, then each trainable parameter
    takes a step that a method states as one function; buffers keep the plain mean.
    """
    out = dict(combined)
    for k in keys:
        out[k] = step(k, global_state[k], combined[k])
    return out
