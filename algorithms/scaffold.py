"""Stochastic Controlled Averaging for Federated Learning (SCAFFOLD) [Karimireddy et al., 2020].

Paper: S. P. Karimireddy, S. Kale, M. Mohri, S. J. Reddi, S. U. Stich, A. T. Suresh, "SCAFFOLD:
Stochastic Controlled Averaging for Federated Learning", ICML 2020, arXiv:1910.06378.

Key idea: client drift under non-IID data is corrected with control variates. The server keeps
``c`` (an estimate of the global gradient), each client keeps ``c_i`` (an estimate of its own
gradient), and every local step uses the corrected gradient ``g - c_i + c``, so each client moves
along the global direction instead of its own. After local training (Algorithm 1, option II)::

    c_i+ = c_i - c + (x - y_i) / (K * lr)        (x: received weights, y_i: trained, K: steps)
    c    = c + |S| / N * mean_{i in S}(c_i+ - c_i)

and the server takes the clients' mean weights (global learning rate 1 by default).

Option II is computed here as the mean of the raw (uncorrected) mini-batch gradients of the round:
with the paper's plain-SGD local solver the two are identical, because ``x - y_i`` is ``lr`` times
the sum of the corrected gradients; the running mean stays correct when the run's optimizer adds
momentum, where ``(x - y_i) / (K * lr)`` would overestimate the gradient by up to ``1 / (1 - beta)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from algorithms.aggregation import StateDict, mean_then_step, weighted_mean
from algorithms.api import ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="scaffold",
        full_name="Stochastic Controlled Averaging (SCAFFOLD)",
        key_idea="Server and client control variates estimate the global and local gradient; each "
        "local step is corrected by (c - c_i), which removes client drift under non-IID data.",
        category="label_skew",
        also_fits=("generic",),
        choose_when="Strong label skew or very different client datasets make FedAvg's local updates "
        "drift apart; every client takes part in most rounds (its c_i goes stale otherwise) and "
        "twice the upload size is acceptable.",
        paper="Karimireddy et al., 2020, arXiv:1910.06378",
    ),
)

_C_I = "scaffold_c_i"
#: Message groups: the server's variate c (server -> client) and a client's change of c_i (back).
C = "c"
DELTA_C = "delta_c"


@register("scaffold")
class Scaffold(FLAlgorithm):
    """FedAvg with gradient correction by server and client control variates.

    Args:
        server_lr: global step size eta_g on the averaged model change (the paper's experiments
            use 1, i.e. the new global weights are the clients' mean).
    """

    def __init__(self, server_lr: float = 1.0) -> None:
        self.server_lr = server_lr

    def validate(self) -> None:
        if self.server_lr <= 0:
            raise ValueError(f"SCAFFOLD server_lr must be > 0, got {self.server_lr}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.c_: StateDict = {k: torch.zeros_like(global_state[k]) for k in server.info.param_keys}

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(arrays={C: self.c_})

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        out = combined
        if self.server_lr != 1.0:
            out = mean_then_step(global_state, combined, self.shared_params(updates, server),
                                 lambda k, g, mean: g + self.server_lr * (mean - g))
        deltas = [u.message.arrays[DELTA_C] for u in updates if DELTA_C in u.message.arrays]
        if deltas:
            # c += (1/N) * sum_{i in S} delta_c_i  ==  |S|/N * mean_{i in S} delta_c_i
            mean_delta = weighted_mean(deltas, [1.0] * len(deltas))
            scale = len(deltas) / max(server.num_clients, len(deltas))
            self.c_ = {k: self.c_[k] + scale * mean_delta[k] for k in self.c_}
        return out

    # ----------------------------------------------------------------- client
    def begin_client(self, ctx: ClientContext) -> None:
        c: StateDict = ctx.message.arrays[C]
        c_i = ctx.state.setdefault(_C_I, {k: torch.zeros_like(v) for k, v in c.items()})
        ctx.scratch["correction"] = {k: c[k] - c_i[k] for k in c}
        ctx.scratch["grad_sum"] = {k: torch.zeros_like(v) for k, v in c.items()}

    @torch.no_grad()
    def after_backward(self, ctx: ClientContext, model: nn.Module) -> None:
        corr, gsum = ctx.scratch["correction"], ctx.scratch["grad_sum"]
        for name, p in model.named_parameters():
            if p.grad is not None and name in corr:
                gsum[name].add_(p.grad)
                p.grad.add_(corr[name])

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        c_i: StateDict = ctx.state[_C_I]
        k = ctx.steps
        if k == 0:  # no step taken (tiny client): keep c_i, contribute nothing to c
            return Message(arrays={DELTA_C: {n: torch.zeros_like(v) for n, v in c_i.items()}})
        new = {n: ctx.scratch["grad_sum"][n] / k for n in c_i}
        ctx.state[_C_I] = new
        return Message(arrays={DELTA_C: {n: new[n] - c_i[n] for n in c_i}})
