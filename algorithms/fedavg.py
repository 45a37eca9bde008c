"""Federated Averaging (FedAvg) [McMahan et al., 2017].

Paper: H. B. McMahan, E. Moore, D. Ramage, S. Hampson, B. Agüera y Arcas, "Communication-Efficient
Learning of Deep Networks from Decentralized Data", AISTATS 2017, arXiv:1602.05629.

Key idea: each sampled client runs a few epochs of SGD from the global weights on its own data; the
server replaces the global weights by the mean of the clients' weights, weighted by sample count.
Every hook of :class:`FLAlgorithm` already does exactly this, so the class adds nothing.
"""

from __future__ import annotations

from algorithms.api import FLAlgorithm
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedavg",
        full_name="Federated Averaging (FedAvg)",
        key_idea="Clients train locally from the global weights; the server takes the sample-weighted "
        "mean of the returned weights.",
        category="generic",
        choose_when="Default choice: clients' data are roughly IID (similar label mix and acquisition), "
        "or no other information is available; the reference every other method is compared with.",
        paper="McMahan et al., 2017, arXiv:1602.05629",
    ),
)


@register("fedavg")
class FedAvg(FLAlgorithm):
    """FedAvg: the base behaviour of every hook."""

    def __init__(self) -> None:
        pass
