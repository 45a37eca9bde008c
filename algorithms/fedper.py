"""Federated Learning with Personalization Layers (FedPer) [Arivazhagan et al., 2019].

Paper: M. G. Arivazhagan, V. Aggarwal, A. K. Singh, S. Choudhary, "Federated Learning with
Personalization Layers", 2019, arXiv:1912.00818.

Key idea: split the network into base layers (the body, a shared representation) and
personalisation layers (the head). Clients train the whole network locally as in FedAvg, but only
the body is sent to the server and averaged; each client keeps its own head across rounds. The
personalised model of a client is the averaged body with its own head, which suits clients whose
label distributions (or label semantics) differ while their images share low-level structure.
"""

from __future__ import annotations

from algorithms.api import FLAlgorithm, ModelInfo
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedper",
        full_name="Federated Learning with Personalization Layers (FedPer)",
        key_idea="The feature extractor (body) is averaged across clients; the classifier head stays "
        "on each client, giving every site its own decision layer on a shared representation.",
        category="personalised",
        choose_when="Each site is evaluated on its own data and label distributions differ between "
        "sites (label skew, different class priors); a personalised model per site is acceptable.",
        paper="Arivazhagan et al., 2019, arXiv:1912.00818",
    ),
)


@register("fedper")
class FedPer(FLAlgorithm):
    """FedAvg on the body; the classifier head (``info.head_keys``) never leaves the client."""

    primary_model = "personal"

    def __init__(self) -> None:
        pass

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(info.head_keys)
