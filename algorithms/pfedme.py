"""Personalized FL with Moreau Envelopes (pFedMe) [Dinh et al., 2020].

Paper: C. T. Dinh, N. H. Tran, T. D. Nguyen, "Personalized Federated Learning with Moreau
Envelopes", NeurIPS 2020, arXiv:2006.08848.

Key idea: each client's personalised model ``theta_i`` solves the Moreau-envelope problem
``min_theta f_i(theta) + lambda/2 ||theta - w_i||^2`` around its copy ``w_i`` of the global model,
and ``w_i`` moves towards it (Algorithm 1). On every mini-batch:

    repeat K times: theta <- theta - personal_lr * (grad f_i(theta; batch) + lambda (theta - w_i))
    w_i <- w_i - lr * lambda * (w_i - theta)

(the second line is the gradient step of ``lambda/2 ||w_i - theta||^2``, which is what the loss
returns). The server mixes the clients' mean into the old global model, ``w <- (1 - beta) w +
beta * mean_i w_i``. ``theta`` starts from the received global model each round and is the model
a client evaluates as its personalised one. Defaults: ``lambda = 15``, ``K = 5``,
``personal_lr = 0.01``, ``beta = 1`` (the paper's and FL-bench's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from algorithms.aggregation import StateDict, mean_then_step
from algorithms.api import (
    PERSONAL_STATE,
    Batch,
    ClientContext,
    ClientUpdate,
    FLAlgorithm,
    Message,
    ServerContext,
)
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="pfedme",
        full_name="Personalized FL with Moreau Envelopes (pFedMe)",
        key_idea="Each client solves a personal problem f_i(theta) + lambda/2 ||theta - w||^2 with K inner "
        "steps per batch, its copy of the global model moves towards theta; lambda sets how far sites may differ.",
        category="personalised",
        choose_when="Sites differ and each wants its own model tied to the federation's by a tunable "
        "strength; costs about K+1 forward-backward passes per batch.",
        paper="Dinh et al., 2020, arXiv:2006.08848",
    ),
)

THETA = "theta"


@register("pfedme")
class PFedMe(FLAlgorithm):
    """Bi-level personalisation: K inner steps on theta per batch, then w_i steps towards theta.

    Args:
        lam: strength lambda of the tie between the personal model and the local global copy.
        k: inner steps on the personal model per mini-batch.
        personal_lr: step size of the inner steps.
        beta: server mixing rate (1: adopt the clients' mean).
    """

    primary_model = "personal"

    def __init__(self, lam: float = 15.0, k: int = 5, personal_lr: float = 0.01, beta: float = 1.0) -> None:
        self.lam = lam
        self.k = k
        self.personal_lr = personal_lr
        self.beta = beta

    def validate(self) -> None:
        if self.lam <= 0:
            raise ValueError(f"pFedMe lam must be > 0 (e.g. 15), got {self.lam}")
        if self.k < 1:
            raise ValueError(f"pFedMe k (inner steps) must be >= 1, got {self.k}")
        if self.personal_lr <= 0:
            raise ValueError(f"pFedMe personal_lr must be > 0, got {self.personal_lr}")
        if not 0 < self.beta <= 2:
            raise ValueError(f"pFedMe beta must be in (0, 2] (1: adopt the clients' mean), got {self.beta}")

    # ----------------------------------------------------------------- client
    def begin_client(self, ctx: ClientContext) -> None:
        ctx.scratch[THETA] = {k: ctx.global_state[k].detach().clone() for k in ctx.info.param_keys}

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        w = {k: p for k, p in model.named_parameters() if p.requires_grad}
        theta = ctx.scratch[THETA]
        for _ in range(self.k):
            t = {k: theta[k].requires_grad_(True) for k in w}
            loss = F.cross_entropy(functional_call(model, t, (batch.x,)), batch.y)
            grads = torch.autograd.grad(loss, list(t.values()))
            with torch.no_grad():
                for (k, tk), g in zip(t.items(), grads):
                    theta[k] = (tk - self.personal_lr * (g + self.lam * (tk - w[k]))).detach()
        return 0.5 * self.lam * sum((p - theta[k]).pow(2).sum() for k, p in w.items())

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        theta = ctx.scratch[THETA]
        ctx.state[PERSONAL_STATE] = {k: theta.get(k, v).detach().clone() for k, v in model.state_dict().items()}
        return Message()

    # ----------------------------------------------------------------- server
    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        if self.beta == 1.0:
            return combined
        return mean_then_step(global_state, combined, self.shared_params(updates, server),
                              lambda k, g, mean: (1 - self.beta) * g + self.beta * mean)
