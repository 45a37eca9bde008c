"""Federated Averaging with Server Momentum (FedAvgM) [Hsu et al., 2019].

Paper: T.-M. H. Hsu, H. Qi, M. Brown, "Measuring the Effects of Non-Identical Data Distribution for
Federated Visual Classification", 2019, arXiv:1909.06335.

Key idea: treat ``w_global - mean(w_clients)`` as a pseudo-gradient and apply heavy-ball momentum on
the server: ``v <- beta * v + delta``, ``w <- w - server_lr * v``. Momentum accumulated across rounds
damps the oscillation that non-identical client data cause. With ``beta = 0`` and ``server_lr = 1``
it is FedAvg.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from algorithms.aggregation import StateDict, mean_then_step
from algorithms.api import ClientUpdate, FLAlgorithm, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedavgm",
        full_name="Federated Averaging with Server Momentum (FedAvgM)",
        key_idea="The server applies momentum to the averaged update (pseudo-gradient), smoothing "
        "the global trajectory across rounds.",
        category="label_skew",
        also_fits=("generic",),
        choose_when="Label distributions differ strongly between clients and FedAvg's global accuracy "
        "oscillates from round to round; cheap, no client-side change.",
        paper="Hsu et al., 2019, arXiv:1909.06335",
    ),
)


@register("fedavgm")
class FedAvgM(FLAlgorithm):
    """FedAvg with heavy-ball momentum on the server's pseudo-gradient.

    Args:
        server_momentum: beta; the paper's best runs use 0.9 (with server_lr 1.0).
        server_lr: server learning rate applied to the momentum buffer.
    """

    def __init__(self, server_momentum: float = 0.9, server_lr: float = 1.0) -> None:
        self.server_momentum = server_momentum
        self.server_lr = server_lr

    def validate(self) -> None:
        if not 0 <= self.server_momentum < 1:
            raise ValueError(f"server_momentum must be in [0, 1), got {self.server_momentum}")
        if self.server_lr <= 0:
            raise ValueError(f"server_lr must be > 0, got {self.server_lr}")

    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.velocity_: StateDict = {}

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        return mean_then_step(global_state, combined, self.shared_params(updates, server), self._step)

    def _step(self, key: str, current: Tensor, mean: Tensor) -> Tensor:
        delta = current - mean
        v = self.velocity_.get(key)
        v = delta.clone() if v is None else self.server_momentum * v + delta
        self.velocity_[key] = v
        return current - self.server_lr * v

