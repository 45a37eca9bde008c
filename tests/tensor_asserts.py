"""State-dict comparisons that cannot pass vacuously: an empty state or a missing key fails."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


def assert_same_tensors(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                        keys: Iterable[str] | None = None, what: str = "states") -> None:
    """Assert ``a[k]`` equals ``b[k]`` exactly for every key (default: all of ``a``'s, which must be ``b``'s)."""
    if keys is None:
        assert set(a) == set(b), f"{what}: keys differ: {sorted(set(a) ^ set(b))[:5]}"
        keys = a
    keys = sorted(keys)
    assert keys, f"{what}: nothing to compare (an empty state would pass any equality check)"
    unequal = [k for k in keys if not torch.equal(a[k], b[k])]
    assert not unequal, f"{what}: tensors differ at {unequal[:5]}"
