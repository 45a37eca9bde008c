"""Elastic Aggregation [Chen et al., 2023].

Paper: D. Chen, J. Hu, V. J. Tan, X. Wei, E. Wu, "Elastic Aggregation for Federated Optimization",
CVPR 2023 (open-access proceedings, no arXiv version).

Key idea: FedAvg moves every parameter by the clients' mean change. Elastic Aggregation scales that
move per parameter by how *sensitive* the clients' objectives are to it. Each client keeps an
exponential moving average of the magnitude of its loss gradient, ``omega = mu * omega + (1 - mu) *
|g|`` (``mu = 0.95``), updated at every local step and kept across rounds, and uploads it. The
server forms, per coordinate, the sample-weighted mean sensitivity and the largest one among the
clients, and steps

    zeta = 1 + tau - mean_i(omega_i) / max_i(omega_i)        (tau = 0.5)
    w <- w + zeta * (mean_i(w_i) - w)

so a parameter every client finds equally sensitive moves cautiously (``zeta -> tau``: the clients
pull it in agreement, and a full step overshoots), while one that matters to a few clients only takes
a larger step (``zeta -> 1 + tau``). Defaults ``tau = 0.5``, ``mu = 0.95`` are FL-bench's.

Where the paper's reference code estimates the sensitivity on a held-out 30% of the client's data
before training, this module reads it from the training gradients themselves (no extra pass, no
data withheld from training); a coordinate that no client has a gradient for (``max = 0``) and
updates that carry no sensitivity take the plain FedAvg step (``zeta = 1``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from algorithms.aggregation import StateDict, mean_then_step
from algorithms.api import ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

log = logging.getLogger(__name__)

CATALOG = (
    CatalogEntry(
        name="elastic",
        full_name="Elastic Aggregation",
        key_idea="Clients upload a moving average of their gradient magnitudes (parameter sensitivity); "
        "the server scales each parameter's averaged update by 1 + tau - mean/max sensitivity, so "
        "parameters all clients rely on move cautiously and the others move further.",
        category="generic",
        also_fits=("label_skew", "feature_skew"),
        choose_when="Heterogeneous sites whose updates interfere in some parameters (FedAvg's global "
        "accuracy oscillates); no extra client compute, an upload of twice the model size.",
        paper="Chen et al., CVPR 2023 (no arXiv version)",
    ),
)

_OMEGA = "elastic_sensitivity"
#: Message group: a client's parameter sensitivities (client -> server).
SENSITIVITY = "sensitivity"


@register("elastic")
class Elastic(FLAlgorithm):
    """FedAvg with a per-parameter step scaled by the clients' sensitivities.

    Args:
        tau: elasticity; ``zeta`` lies in ``[tau, 1 + tau]`` (FL-bench: 0.5).
        mu: decay of the clients' moving average of ``|gradient|`` (FL-bench: 0.95).
    """

    def __init__(self, tau: float = 0.5, mu: float = 0.95) -> None:
        self.tau = tau
        self.mu = mu

    def validate(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"Elastic tau must be in [0, 1] (the step factor lies in [tau, 1 + tau]), got {self.tau}")
        if not 0.0 <= self.mu < 1.0:
            raise ValueError(f"Elastic mu must be in [0, 1) (decay of the gradient moving average), got {self.mu}")

    # ----------------------------------------------------------------- client
    def begin_client(self, ctx: ClientContext) -> None:
        ctx.state.setdefault(_OMEGA, {k: torch.zeros_like(ctx.global_state[k], dtype=torch.float32)
                                      for k in ctx.info.param_keys})

    @torch.no_grad()
    def after_backward(self, ctx: ClientContext, model: nn.Module) -> None:
        omega = ctx.state[_OMEGA]
        for name, p in model.named_parameters():
            if p.grad is not None and name in omega:
                omega[name].mul_(self.mu).add_(p.grad.abs().float(), alpha=1.0 - self.mu)

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        return Message(arrays={SENSITIVITY: {k: v.clone() for k, v in ctx.state[_OMEGA].items()}})

    # ----------------------------------------------------------------- server
    def step_factors(self, updates: Sequence[ClientUpdate], server: ServerContext) -> StateDict:
        """``zeta`` per coordinate of every parameter the clients sent sensitivities for."""
        sens = [u.message.arrays[SENSITIVITY] for u in updates if SENSITIVITY in u.message.arrays]
        if len(sens) != len(updates):
            return {}
        w = torch.tensor([self.client_weight(u, server) for u in updates], dtype=torch.float64)
        w = w / w.sum()
        zeta: StateDict = {}
        for k in sens[0]:
            stacked = torch.stack([s[k].to(torch.float64) for s in sens])
            mean = (stacked * w.view(-1, *[1] * (stacked.dim() - 1))).sum(dim=0)
            top = stacked.max(dim=0).values
            ratio = torch.where(top > 0, mean / top.clamp_min(1e-300), torch.full_like(top, self.tau))
            zeta[k] = 1.0 + self.tau - ratio
        return zeta

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        zeta = self.step_factors(updates, server)
        if not zeta:
            if updates:
                log.warning("Elastic: some updates carry no sensitivities; taking the plain FedAvg step this round")
            return combined
        keys = [k for k in self.shared_params(updates, server) if k in zeta]
        return mean_then_step(global_state, combined, keys,
                              lambda k, g, mean: (g + zeta[k].to(g.device) * (mean - g)).to(g.dtype))
