"""Federated Trimmed Averaging (FedTrimmedAvg) [Yin et al., 2018].

Paper: D. Yin, Y. Chen, K. Ramchandran, P. Bartlett, "Byzantine-Robust Distributed Learning:
Towards Optimal Statistical Rates", ICML 2018, arXiv:1803.01498.

Key idea: for every coordinate the server sorts the clients' values, drops the ``floor(beta * n)``
smallest and the ``floor(beta * n)`` largest, and averages the rest (unweighted). It sits between
the mean (``beta = 0``) and the median: outliers are cut, the remaining clients still all count.
The definition and the default ``beta = 0.2`` are Flower's ``FedTrimmedAvg`` (SciPy's
``trim_mean``); ``beta`` must lie in [0, 0.5). With fewer than ``1 / beta`` clients nothing is cut
(e.g. 4 clients at 0.2), which is the plain unweighted mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from algorithms.aggregation import InconsistentUpdates, StateDict
from algorithms.api import ClientUpdate, FLAlgorithm, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

__all__ = ["FedTrimmedAvg", "trimmed_mean"]

CATALOG = (
    CatalogEntry(
        name="fedtrimmedavg",
        full_name="Federated Trimmed Averaging (FedTrimmedAvg)",
        key_idea="For every weight the server drops the beta fraction of highest and lowest client values "
        "and averages the rest, so outlying or corrupted updates are cut while most clients still count.",
        category="generic",
        choose_when="Several sites (five or more, so that something is trimmed at beta=0.2) and one of them "
        "may send outlying or corrupted updates; less wasteful of honest clients than the median.",
        paper="Yin et al., 2018, arXiv:1803.01498",
    ),
)


def trimmed_mean(values: Sequence[Tensor], beta: float) -> Tensor:
    """Element-wise mean of ``values`` after cutting ``int(beta * n)`` values at each end (float64)."""
    ref = values[0]
    if any(v.shape != ref.shape for v in values):
        raise InconsistentUpdates("clients returned tensors of different shapes; the same model is needed")
    n = len(values)
    cut = int(beta * n)
    stacked = torch.stack([v.to(torch.float64) for v in values]).sort(dim=0).values
    mean = stacked[cut:n - cut].mean(dim=0)
    return mean.to(ref.dtype) if ref.is_floating_point() else mean.round().to(ref.dtype)


@register("fedtrimmedavg")
class FedTrimmedAvg(FLAlgorithm):
    """FedAvg with the weighted mean replaced by a coordinate-wise trimmed mean.

    Args:
        beta: fraction cut at each end, in [0, 0.5) (Flower's default 0.2).
    """

    def __init__(self, beta: float = 0.2) -> None:
        self.beta = beta

    def validate(self) -> None:
        if not 0.0 <= self.beta < 0.5:
            raise ValueError(f"FedTrimmedAvg beta must be in [0, 0.5) (a fraction cut at each end), got {self.beta}; "
                             "0.2 is Flower's default, 0 gives the unweighted mean")

    def combine(self, updates: Sequence[ClientUpdate], server: ServerContext) -> StateDict:
        if not updates:
            raise InconsistentUpdates("nothing to aggregate: no client returned an update")
        return {k: trimmed_mean([u.weights[k] for u in updates], self.beta) for k in updates[0].weights}
