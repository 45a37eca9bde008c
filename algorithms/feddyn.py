"""Federated Learning Based on Dynamic Regularization (FedDyn) [Acar et al., 2021].

Paper: D. A. E. Acar, Y. Zhao, R. M. Navarro, M. Mattina, P. N. Whatmough, V. Saligrama, "Federated
Learning Based on Dynamic Regularization", ICLR 2021, arXiv:2111.04263.

Key idea: with heterogeneous data the minimisers of the clients' losses are not the minimiser of
the global loss, so FedAvg's fixed points are wrong. FedDyn gives each client k a regulariser that
changes every round so that, at convergence, the stationary points of the local objectives agree
with the global one (Algorithm 1)::

    client:  theta_k = argmin L_k(theta) - <grad_k, theta> + alpha/2 ||theta - theta_global||^2
             grad_k <- grad_k - alpha (theta_k - theta_global)
    server:  h <- h - alpha / m * sum_{k in P} (theta_k - theta_global)     (m: all clients)
             theta_global <- mean_{k in P} theta_k - h / alpha

``grad_k`` (the client's last local gradient) lives in the client's state, ``h`` on the server. The
linear term is written ``-<grad_k, theta - theta_global>``: the same gradient, but the reported
training loss does not carry an arbitrary constant. As in the paper the server mean is unweighted
and only trainable parameters are corrected; buffers (BatchNorm statistics) are plainly averaged.
``alpha = 0.01`` is among the paper's values ({0.1, 0.01, 0.001}) and its choice for most settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from algorithms.aggregation import StateDict, mean_then_step
from algorithms.api import Batch, ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register
from algorithms.regularisers import proximal_term

CATALOG = (
    CatalogEntry(
        name="feddyn",
        full_name="Federated Dynamic Regularization (FedDyn)",
        key_idea="Each client's loss gets a linear term from its previous gradient plus a proximal "
        "term, updated every round, so that local optima agree with the global optimum; the server "
        "corrects the averaged model with the accumulated drift h.",
        category="label_skew",
        also_fits=("generic",),
        choose_when="Heterogeneous clients (label skew, unequal sizes), possibly with partial "
        "participation, where FedAvg converges slowly or to a biased model; many rounds available.",
        paper="Acar et al., 2021, arXiv:2111.04263",
    ),
)

_GRAD = "feddyn_grad"


@register("feddyn")
class FedDyn(FLAlgorithm):
    """FedAvg with FedDyn's dynamic client regulariser and server-side drift correction.

    Args:
        alpha: weight of the dynamic regulariser (paper: 0.01 in most experiments).
    """

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha

    def validate(self) -> None:
        if self.alpha <= 0:
            raise ValueError(f"FedDyn alpha must be > 0 (the server divides by it), got {self.alpha}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.h_: StateDict = {k: torch.zeros_like(global_state[k]) for k in server.info.param_keys}

    def client_weight(self, update: ClientUpdate, server: ServerContext) -> float:
        return 1.0  # the paper's server mean is unweighted

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        share = len(updates) / max(server.num_clients, len(updates))  # |P| / m

        def step(k: str, current: Tensor, mean: Tensor) -> Tensor:
            self.h_[k] = self.h_[k] - self.alpha * share * (mean - current)
            return mean - self.h_[k] / self.alpha

        return mean_then_step(global_state, combined, [k for k in self.h_ if k in updates[0].weights], step)

    # ----------------------------------------------------------------- client
    def begin_client(self, ctx: ClientContext) -> None:
        if _GRAD not in ctx.state:
            ctx.state[_GRAD] = {k: torch.zeros_like(ctx.global_state[k]) for k in ctx.info.param_keys}

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        grad_prev = ctx.state[_GRAD]
        linear = torch.zeros((), device=batch.loss.device)
        for name, p in model.named_parameters():
            if p.requires_grad and name in grad_prev:
                linear = linear + (grad_prev[name] * (p - ctx.global_state[name])).sum()
        return batch.loss - linear + 0.5 * self.alpha * proximal_term(model, ctx.global_state, grad_prev)

    @torch.no_grad()
    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        params = dict(model.named_parameters())
        grad_prev = ctx.state[_GRAD]
        for k in grad_prev:
            grad_prev[k] = grad_prev[k] - self.alpha * (params[k].detach() - ctx.global_state[k])
        return Message()
