"""Federated Optimization in Heterogeneous Networks (FedProx) [Li et al., 2020].

Paper: T. Li, A. K. Sahu, M. Zaheer, M. Sanjabi, A. Talwalkar, V. Smith, "Federated Optimization in
Heterogeneous Networks", MLSys 2020, arXiv:1812.06127.

Key idea: each client minimises its loss plus a proximal term ``mu/2 * ||w - w_global||^2`` that
keeps local weights near the weights it received, which limits client drift when data (or the
amount of local work) differs between clients. The server aggregates as FedAvg. With ``mu = 0`` it
is FedAvg exactly.
"""

from __future__ import annotations

from torch import Tensor, nn

from algorithms.api import Batch, ClientContext, FLAlgorithm
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register
from algorithms.regularisers import proximal_term

CATALOG = (
    CatalogEntry(
        name="fedprox",
        full_name="Federated Proximal (FedProx)",
        key_idea="Adds a proximal term mu/2 ||w - w_global||^2 to each client's loss so that local "
        "updates cannot drift far from the global model.",
        category="label_skew",
        also_fits=("generic",),
        choose_when="Clients are heterogeneous (non-IID labels, very different dataset sizes or "
        "compute) and FedAvg's local updates diverge; a safe generic improvement over FedAvg.",
        paper="Li et al., 2020, arXiv:1812.06127",
    ),
)


@register("fedprox")
class FedProx(FLAlgorithm):
    """FedAvg plus a proximal term on the client.

    Args:
        mu: weight of the proximal term (the paper tunes it in {0.001, 0.01, 0.1, 1}; 0.01 is a common
            default for image tasks).
    """

    def __init__(self, mu: float = 0.01) -> None:
        self.mu = mu

    def validate(self) -> None:
        if self.mu < 0:
            raise ValueError(f"FedProx mu must be >= 0, got {self.mu}")

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if self.mu == 0:
            return batch.loss
        return batch.loss + 0.5 * self.mu * proximal_term(model, ctx.global_state)
