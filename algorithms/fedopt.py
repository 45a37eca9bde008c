"""Adaptive Federated Optimization: FedAdagrad, FedAdam, FedYogi [Reddi et al., 2021].

Paper: S. J. Reddi, Z. Charles, M. Zaheer, Z. Garrett, K. Rush, J. Konečný, S. Kumar, H. B. McMahan,
"Adaptive Federated Optimization", ICLR 2021, arXiv:2003.00295.

Key idea: clients run plain SGD; the server treats the averaged change ``delta = mean(w_i) - w`` as
a pseudo-gradient and applies an adaptive optimizer to it (Algorithm 2 of the paper):
``m <- b1 m + (1 - b1) delta``; the second moment ``v`` follows Adagrad (``v + delta^2``), Adam
(``b2 v + (1 - b2) delta^2``) or Yogi (``v - (1 - b2) delta^2 sign(v - delta^2)``); then
``w <- w + server_lr * m / (sqrt(v) + tau)``. Per-coordinate step sizes help when clients'
gradients have very different scales. Defaults follow the paper: b1 = 0.9, b2 = 0.99, tau = 1e-3,
and ``v`` starts at ``tau^2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from algorithms.aggregation import StateDict, mean_then_step
from algorithms.api import ClientUpdate, FLAlgorithm, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

_PAPER = "Reddi et al., 2021, arXiv:2003.00295"
_WHEN = ("Clients' updates differ in scale or sparsity (heterogeneous data, many rounds); adaptive "
         "server steps converge faster and need less client learning-rate tuning than FedAvg.")

CATALOG = (
    CatalogEntry(name="fedadagrad", full_name="Federated Adagrad (FedAdagrad)", category="generic",
                 key_idea="Server applies Adagrad to the averaged client update (pseudo-gradient).",
                 choose_when=_WHEN, paper=_PAPER),
    CatalogEntry(name="fedadam", full_name="Federated Adam (FedAdam)", category="generic",
                 key_idea="Server applies Adam to the averaged client update (pseudo-gradient).",
                 choose_when=_WHEN, paper=_PAPER),
    CatalogEntry(name="fedyogi", full_name="Federated Yogi (FedYogi)", category="generic",
                 key_idea="Server applies Yogi (Adam with an additive, sign-controlled second moment) to "
                 "the averaged client update; more stable than FedAdam under heterogeneity.",
                 choose_when=_WHEN, paper=_PAPER),
)


class FedOpt(FLAlgorithm):
    """Shared server-side adaptive step; subclasses differ only in the second-moment update."""

    rule: ClassVar[str] = "adam"

    def __init__(self, server_lr: float = 0.01, beta1: float = 0.9, beta2: float = 0.99,
                 tau: float = 1e-3) -> None:
        self.server_lr = server_lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.tau = tau

    def validate(self) -> None:
        if self.server_lr <= 0 or self.tau <= 0:
            raise ValueError(f"server_lr and tau must be > 0, got {self.server_lr}, {self.tau}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must be in [0, 1), got {self.beta1}, {self.beta2}")

    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.m_: StateDict = {}
        self.v_: StateDict = {}

    def second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return self.beta2 * v + (1 - self.beta2) * d2

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        return mean_then_step(global_state, combined, self.shared_params(updates, server), self._step)

    def _step(self, key: str, current: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        delta = mean - current
        m = self.m_.get(key, torch.zeros_like(delta))
        v = self.v_.get(key, torch.full_like(delta, self.tau ** 2))
        m = self.beta1 * m + (1 - self.beta1) * delta
        v = self.second_moment(v, delta * delta)
        self.m_[key], self.v_[key] = m, v
        return current + self.server_lr * m / (v.sqrt() + self.tau)


@register("fedadam")
class FedAdam(FedOpt):
    """FedOpt with Adam's second moment: ``v <- b2 v + (1 - b2) delta^2``."""


@register("fedyogi")
class FedYogi(FedOpt):
    """FedOpt with Yogi's second moment: ``v <- v - (1 - b2) delta^2 sign(v - delta^2)``."""

    def second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return v - (1 - self.beta2) * d2 * torch.sign(v - d2)


@register("fedadagrad")
class FedAdagrad(FedOpt):
    """FedOpt with Adagrad's second moment: ``v <- v + delta^2`` (``beta2`` is unused)."""

    def __init__(self, server_lr: float = 0.01, beta1: float = 0.9, tau: float = 1e-3) -> None:
        super().__init__(server_lr=server_lr, beta1=beta1, tau=tau)

    def second_moment(self, v: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
        return v + d2
