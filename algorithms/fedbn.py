"""Federated Learning on Non-IID Features via Local Batch Normalization (FedBN) [Li et al., 2021].

Paper: X. Li, M. Jiang, X. Zhang, M. Kamp, Q. Dou, "FedBN: Federated Learning on Non-IID Features
via Local Batch Normalization", ICLR 2021, arXiv:2102.07623.

Key idea: when clients differ in feature distribution (scanners, stains, acquisition protocols),
keep every BatchNorm layer (affine weights and running statistics) local and average only the
rest. Each client normalises with its own statistics; its personalised model is the shared weights
plus its own BatchNorm. The global model's BatchNorm stays at its initial values.
"""

from __future__ import annotations

from algorithms.api import FLAlgorithm, ModelInfo
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedbn",
        full_name="Federated Batch Normalization (FedBN)",
        key_idea="BatchNorm layers stay local to each client; all other weights are averaged, so "
        "each site normalises features with its own statistics.",
        category="feature_skew",
        choose_when="Sites share the label set but images look different (different scanners, "
        "stains, resolutions, intensity ranges); the model has BatchNorm layers.",
        paper="Li et al., 2021, arXiv:2102.07623",
    ),
)


@register("fedbn")
class FedBN(FLAlgorithm):
    """FedAvg that never shares BatchNorm parameters or statistics."""

    primary_model = "personal"

    def __init__(self) -> None:
        pass

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(info.bn_keys)
