"""FedTrimmedAvg: cut int(beta * n) values at each end of every coordinate, average the rest (Flower's)."""

from __future__ import annotations

import pytest
import torch

from algorithms.api import ClientUpdate, ServerContext
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_info, dummy_state

torch.set_num_threads(1)
K = "head.bias"


def _aggregate(values, beta=0.2, sizes=None):
    g = dummy_state(0)
    sizes = sizes or [10] * len(values)
    ups = [ClientUpdate(i, {**g, K: v}, n) for i, (v, n) in enumerate(zip(values, sizes))]
    n = len(values)
    return get_algorithm("fedtrimmedavg", beta=beta).aggregate(
        g, ups, ServerContext(1, dummy_info(), n, tuple(range(n)), tuple(sizes)))[K]


def test_five_clients_at_default_beta_drop_the_extremes_of_each_coordinate() -> None:
    vals = [torch.tensor([1.0, 10.0, 0.0]), torch.tensor([2.0, -50.0, 0.0]), torch.tensor([3.0, 20.0, 3.0]),
            torch.tensor([4.0, 30.0, 6.0]), torch.tensor([500.0, 40.0, 9.0])]
    # int(0.2 * 5) = 1 cut at each end: coordinate 0 keeps 2,3,4; coordinate 1 keeps 10,20,30; 2 keeps 0,3,6
    out = _aggregate(vals, sizes=[1, 1, 1, 1, 1000])
    assert torch.allclose(out, torch.tensor([3.0, 20.0, 3.0]))


def test_beta_zero_is_the_unweighted_mean_and_few_clients_cut_nothing() -> None:
    vals = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0]), torch.tensor([8.0, 8.0, 8.0])]
    mean = torch.stack(vals).mean(dim=0)
    assert torch.allclose(_aggregate(vals, beta=0.0, sizes=[1, 1, 100]), mean)
    assert torch.allclose(_aggregate(vals, beta=0.2), mean)           # int(0.6) = 0: nothing cut
    assert torch.allclose(_aggregate(vals, beta=0.34), torch.tensor([3.0, 2.0, 3.0]))  # one cut: the median


@pytest.mark.parametrize("beta", [-0.1, 0.5, 0.9])
def test_beta_outside_zero_to_half_is_refused(beta) -> None:
    with pytest.raises(ValueError, match=r"\[0, 0.5\)"):
        get_algorithm("fedtrimmedavg", beta=beta)
