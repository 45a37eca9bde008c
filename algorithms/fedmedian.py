"""Federated Median (FedMedian) [Yin et al., 2018].

Paper: D. Yin, Y. Chen, K. Ramchandran, P. Bartlett, "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML 2018, arXiv:1803.01498.

Key idea: the server takes the coordinate-wise median of the clients' weights instead of their
(sample-weighted) mean, so a minority of arbitrarily bad updates (a corrupted site, a mislabelled
export) cannot drag the global model far. As in Flower's ``FedMedian`` strategy (``np.median`` over
the stacked client arrays), the median ignores sample counts and, for an even number of clients, is
the mean of the two middle values. Integer buffers (BatchNorm's ``num_batches_tracked``) are
rounded back to integers. No hyper-parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from algorithms.aggregation import InconsistentUpdates, StateDict
from algorithms.api import ClientUpdate, FLAlgorithm, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

__all__ = ["FedMedian", "coordinate_median"]

CATALOG = (
    CatalogEntry(
        name="fedmedian",
        full_name="Federated Median (FedMedian)",
        key_idea="The server takes the coordinate-wise median of the clients' weights instead of their "
        "mean, so a minority of outlying or corrupted updates cannot move the global model far.",
        category="generic",
        choose_when="A site may send corrupted or strongly outlying updates (faulty export, wrong labels) "
        "and there are at least three sites; it ignores sample counts, so with few, honest but unequal "
        "sites FedAvg uses the data better.",
        paper="Yin et al., 2018, arXiv:1803.01498",
    ),
)


def coordinate_median(values: Sequence[Tensor]) -> Tensor:
    """Element-wise median of equally shaped tensors; even counts give the mean of the middle two.

    Computed in float64 (as NumPy's ``np.median``, which Flower uses); integer tensors are rounded back.
    """
    ref = values[0]
    if any(v.shape != ref.shape for v in values):
        raise InconsistentUpdates("clients returned tensors of different shapes; the same model is needed")
    stacked = torch.stack([v.to(torch.float64) for v in values]).sort(dim=0).values
    n = len(values)
    mid = stacked[(n - 1) // 2] if n % 2 else (stacked[n // 2 - 1] + stacked[n // 2]) / 2
    return mid.to(ref.dtype) if ref.is_floating_point() else mid.round().to(ref.dtype)


@register("fedmedian")
class FedMedian(FLAlgorithm):
    """FedAvg with the weighted mean replaced by the unweighted coordinate-wise median."""

    def __init__(self) -> None:
        pass

    def combine(self, updates: Sequence[ClientUpdate], server: ServerContext) -> StateDict:
        if not updates:
            raise InconsistentUpdates("nothing to aggregate: no client returned an update")
        return {k: coordinate_median([u.weights[k] for u in updates]) for k in updates[0].weights}
