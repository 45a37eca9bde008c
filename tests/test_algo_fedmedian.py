"""FedMedian: the coordinate-wise median of the clients' weights, as Flower's np.median defines it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from algorithms.api import ClientUpdate, ServerContext
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_info, dummy_state

torch.set_num_threads(1)


def _updates(states, sizes):
    return [ClientUpdate(i, s, n) for i, (s, n) in enumerate(zip(states, sizes))]


def _server(n):
    return ServerContext(1, dummy_info(), n, tuple(range(n)), tuple([10] * n))


def test_median_of_three_updates_ignores_the_outlier_and_the_sample_counts() -> None:
    k = "head.bias"
    g = dummy_state(0)
    vals = [torch.tensor([1.0, 5.0, -2.0]), torch.tensor([2.0, 100.0, 0.0]), torch.tensor([1000.0, 6.0, -1.0])]
    states = [{**g, k: v} for v in vals]
    out = get_algorithm("fedmedian").aggregate(g, _updates(states, [1, 1, 1000]), _server(3))
    assert torch.equal(out[k], torch.tensor([2.0, 6.0, -1.0]))   # per coordinate, not one client's vector
    mean = get_algorithm("fedavg").aggregate(g, _updates(states, [1, 1, 1000]), _server(3))
    assert mean[k][0] > 900, "the weighted mean follows the large outlying client; the median does not"


def test_even_count_and_every_key_match_numpy_median() -> None:
    states = [dummy_state(s) for s in range(1, 5)]
    out = get_algorithm("fedmedian").aggregate(dummy_state(0), _updates(states, [3, 5, 7, 9]), _server(4))
    for k, v in out.items():
        ref = np.median(np.stack([s[k].double().numpy() for s in states]), axis=0)
        if v.is_floating_point():
            assert np.allclose(v.double().numpy(), ref, atol=1e-6), k
        else:
            assert v.dtype == states[0][k].dtype and np.array_equal(v.numpy(), np.round(ref)), k
    k = "head.bias"
    two_middle = torch.stack([s[k] for s in states]).sort(dim=0).values[1:3].mean(dim=0)
    assert torch.allclose(out[k], two_middle, atol=1e-6)


def test_no_hyperparameters() -> None:
    with pytest.raises(ValueError, match="takes none"):
        get_algorithm("fedmedian", beta=0.1)
