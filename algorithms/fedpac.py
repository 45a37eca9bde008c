"""Personalized FL with Feature Alignment and Classifier Collaboration (FedPAC) [Xu et al., 2023].

Paper: J. Xu, X. Tong, S.-L. Huang, "Personalized Federated Learning with Feature Alignment and
Classifier Collaboration", ICLR 2023, arXiv:2306.11867.

Key idea: the model is a shared feature extractor and a per-client classifier.
1. *Feature alignment*: each round a client first trains its classifier alone (one epoch, extractor
   frozen), then the extractor with cross-entropy plus ``lambda * ||f(x) - c_y||^2`` to the global
   prototype of the example's class, so all sites map a class to the same place in feature space.
2. *Classifier collaboration*: after training a client uploads per-class feature means, counts and
   the trace of its per-class feature covariance. For client ``i`` the server chooses combination
   weights ``alpha_i`` on the simplex minimising the estimated test error of the combined classifier,
   a bias term ``sum_c pi_ic ||sum_j alpha_j (mu_ic - mu_jc)||^2`` plus a variance term
   ``sum_j alpha_j^2 V_j`` (``V_j``: client ``j``'s feature variance over its sample count); it
   solves the small quadratic programme with SLSQP (the paper uses a QP solver), drops weights below 1e-3,
   and sends client ``i`` the classifier ``sum_j alpha_ij head_j`` to start its next round from.
The extractor is the sample-weighted mean; global prototypes are the sample-weighted class means.
The personalised model is the shared extractor with the client's own trained classifier.
Defaults: ``lambda = 1``, one classifier epoch (the paper's and FL-bench's).

Shares beyond weights: per-class mean features, per-class counts and feature-variance traces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from torch import Tensor, nn

from algorithms.aggregation import StateDict, weighted_mean
from algorithms.api import (
    PERSONAL_STATE,
    Batch,
    ClientContext,
    ClientUpdate,
    FLAlgorithm,
    Message,
    Phase,
    ServerContext,
)
from algorithms.catalog_entry import CatalogEntry
from algorithms.fedproto import GLOBAL, class_sums, local_prototypes, prototype_loss, weighted_prototypes
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedpac",
        full_name="Feature Alignment and Classifier Collaboration (FedPAC)",
        key_idea="Shared extractor aligned to global class prototypes; each client's classifier is a "
        "server-chosen weighted combination of similar clients' classifiers (weights from uploaded "
        "class-mean features and variances).",
        category="personalised",
        also_fits=("feature_skew",),
        choose_when="Sites differ in label mix or feature style but share classes; each wants its own "
        "classifier that borrows from similar sites. Shares class-mean features, label counts and "
        "feature variances.",
        paper="Xu et al., 2023, arXiv:2306.11867",
        shares=("prototypes", "statistics"),
    ),
)

STATS = "pac_stats"


def simplex_projection(v: Tensor) -> Tensor:
    """Euclidean projection of ``v`` onto the probability simplex (Duchi et al., 2008)."""
    u, _ = torch.sort(v, descending=True)
    css = torch.cumsum(u, 0) - 1
    idx = torch.arange(1, len(v) + 1, dtype=v.dtype)
    rho = int(torch.nonzero(u - css / idx > 0)[-1])
    return (v - css[rho] / (rho + 1)).clamp(min=0)


def collaboration_weights(means: Tensor, counts: Tensor, variances: Tensor, i: int, iters: int = 500) -> Tensor:
    """FedPAC's combination weights for client ``i``.

    Args:
        means: ``[M, C, d]`` per-client class feature means (rows of absent classes are ignored).
        counts: ``[M, C]`` per-client class counts.
        variances: ``[M]`` each client's variance term ``V_j``.
        i: the client the weights are for.
    """
    m = means.shape[0]
    have = counts > 0
    glob = (means * counts[..., None]).sum(0) / counts.sum(0).clamp(min=1)[:, None]
    mu = torch.where(have[..., None], means, glob.expand_as(means))  # absent class: the global prototype
    pi = counts[i] / counts[i].sum().clamp(min=1)
    diff = mu[i][None] - mu  # [M, C, d]
    quad = torch.einsum("c,jcd,kcd->jk", pi, diff, diff) + torch.diag(variances)
    q = quad.numpy()
    res = minimize(lambda a: float(a @ q @ a), np.full(m, 1.0 / m), jac=lambda a: 2 * q @ a, method="SLSQP",
                   bounds=[(0.0, 1.0)] * m, constraints=({"type": "eq", "fun": lambda a: a.sum() - 1.0},),
                   options={"ftol": 1e-15, "maxiter": iters})
    alpha = simplex_projection(torch.from_numpy(res.x))
    alpha = torch.where(alpha < 1e-3, torch.zeros_like(alpha), alpha)
    return alpha / alpha.sum() if alpha.sum() > 0 else torch.eye(m, dtype=quad.dtype)[i]


@register("fedpac")
class FedPAC(FLAlgorithm):
    """Prototype-aligned shared extractor, classifier combinations chosen per client by the server.

    Args:
        lam: weight lambda of the feature-alignment term.
        head_epochs: epochs of classifier-only training at the start of each round.
    """

    primary_model = "personal"

    def __init__(self, lam: float = 1.0, head_epochs: int = 1) -> None:
        self.lam = lam
        self.head_epochs = head_epochs

    def validate(self) -> None:
        if self.lam < 0:
            raise ValueError(f"FedPAC lam must be >= 0, got {self.lam}")
        if self.head_epochs < 0:
            raise ValueError(f"FedPAC head_epochs must be >= 0, got {self.head_epochs}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.prototypes_: dict[str, Tensor] = {}
        self.heads_: dict[int, StateDict] = {}

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        head = self.heads_.get(client_id)
        return {**global_state, **head} if head else global_state

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(arrays={GLOBAL: self.prototypes_}) if self.prototypes_ else Message()

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        ups = [u for u in updates if STATS in u.message.arrays]
        if not ups:
            return combined
        stats = [u.message.arrays[STATS] for u in ups]
        self.prototypes_ = weighted_prototypes(stats)
        means = torch.stack([s["mean"].double().cpu() for s in stats])
        counts = torch.stack([s["count"].double().cpu() for s in stats])
        variances = torch.stack([s["variance"].double().cpu().reshape(()) for s in stats])
        keys = server.info.head_keys
        for pos, u in enumerate(ups):
            alpha = collaboration_weights(means, counts, variances, pos)
            self.heads_[u.client_id] = weighted_mean([{k: o.weights[k] for k in keys} for o in ups], alpha.tolist())
        return combined

    # ----------------------------------------------------------------- client
    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        head = frozenset(ctx.info.head_keys)
        body = frozenset(k for k in ctx.info.param_keys if k not in head)
        phases = [Phase(epochs=self.head_epochs, trainable=head)] if self.head_epochs else []
        return [*phases, Phase(epochs=ctx.local_epochs, trainable=body), Phase(epochs=1, kind="observe")]

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        protos = ctx.message.arrays.get(GLOBAL)
        head_only = ctx.phase is not None and ctx.phase.trainable == frozenset(ctx.info.head_keys)
        if head_only or not protos or self.lam == 0:
            return batch.loss
        return batch.loss + self.lam * prototype_loss(batch, protos)

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        class_sums(ctx, batch)
        sq = ctx.scratch.setdefault("sq", torch.zeros(ctx.info.num_classes, device=batch.feats.device))
        sq.index_add_(0, batch.y, batch.feats.float().pow(2).sum(1))

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        protos = local_prototypes(ctx)
        n = protos["count"]
        trace = ctx.scratch["sq"] / n.clamp(min=1) - protos["mean"].pow(2).sum(1)  # tr Cov per class
        variance = (n * trace).sum() / n.sum().clamp(min=1) / n.sum().clamp(min=1)
        state = model.state_dict()  # the trained classifier is this client's personal part
        ctx.state[PERSONAL_STATE] = {k: state[k].detach().clone() for k in ctx.info.head_keys}
        return Message(arrays={STATS: {**protos, "variance": variance.reshape(1)}})

    def personalised_state(self, global_state: StateDict, client_state: dict[str, Any],
                           local_state: StateDict) -> StateDict:
        return {**global_state, **client_state.get(PERSONAL_STATE, {})}
