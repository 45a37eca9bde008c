"""Federated learning with implicit invariant relationships (FedIIR) [Guo et al., 2023].

Paper: Y. Guo, K. Guo, X. Cao, T. Wu, Y. Chang, "Out-of-Distribution Generalization of Federated
Learning via Implicit Invariant Relationships", ICML 2023 (PMLR v202; no arXiv version).

Key idea: a representation is invariant across sites when the classifier on top of it is optimal
for every site at once, i.e. the sites' classifier gradients agree. FedIIR aligns them without
sharing any data: each round has two passes. In the first, every sampled client computes the
gradient of its cross-entropy with respect to the classifier's parameters on its training data
(no training) and uploads it; the server averages these (sample-weighted) into the global
classifier gradient, smoothed over rounds by an exponential moving average. In the second pass the
clients train with the penalty ``penalty * ||grad_cls(batch) - grad_mean||^2`` added to the
cross-entropy, which pulls every site's classifier gradient towards the federation's, and FedAvg
aggregates. Defaults follow FL-bench's implementation: ``ema = 0.95``, ``penalty = 1e-3``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.aggregation import StateDict, weighted_mean
from algorithms.api import Batch, ClientContext, ClientUpdate, FLAlgorithm, Message, Phase, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fediir",
        full_name="Federated Implicit Invariant Relationships (FedIIR)",
        key_idea="Two passes per round: clients upload their classifier gradients, the server averages "
        "them, and local training penalises each batch's classifier gradient for differing from that "
        "mean, so the representation keeps what every site's classifier agrees on.",
        category="domain_generalisation",
        also_fits=("feature_skew",),
        choose_when="Sites differ in acquisition (feature skew) and the model must generalise to sites "
        "that did not train; uploads one classifier-sized gradient per client per round extra.",
        paper="Guo et al., ICML 2023 (no arXiv version; PMLR v202)",
    ),
)

GRAD = "classifier_grad"  # client -> server, stage 0
GRAD_MEAN = "grad_mean"  # server -> client, stage 1


def classifier_grad(model: nn.Module, feats: Tensor, y: Tensor, keys: Sequence[str],
                    create_graph: bool = False) -> dict[str, Tensor]:
    """Gradient of the mean cross-entropy of ``classifier(feats)`` w.r.t. the classifier's parameters."""
    params = dict(model.named_parameters())
    with torch.enable_grad():
        loss = F.cross_entropy(model.get_classifier()(feats), y)
        grads = torch.autograd.grad(loss, [params[k] for k in keys], create_graph=create_graph)
    return dict(zip(keys, grads))


@register("fediir")
class FedIIR(FLAlgorithm):
    """FedAvg with a penalty aligning each client's classifier gradient with the federation's.

    Args:
        ema: weight of the previous rounds' mean gradient in the moving average.
        penalty: weight of the gradient-alignment penalty.
    """

    def __init__(self, ema: float = 0.95, penalty: float = 1e-3) -> None:
        self.ema = ema
        self.penalty = penalty

    def validate(self) -> None:
        if not 0 <= self.ema < 1 or self.penalty < 0:
            raise ValueError(f"FedIIR needs ema in [0, 1) and penalty >= 0, got ema={self.ema}, "
                             f"penalty={self.penalty}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.grad_mean_: dict[str, Tensor] = {}

    def stages(self, server: ServerContext) -> list[tuple[int, ...]]:
        return [server.sampled, server.sampled]  # 0: classifier gradients, 1: penalised training

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message() if server.stage == 0 else Message(arrays={GRAD_MEAN: self.grad_mean_})

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        grads = [u for u in updates if GRAD in u.message.arrays]
        if server.stage != 0 or not grads:
            return super().aggregate(global_state, updates, server)
        new = weighted_mean([u.message.arrays[GRAD] for u in grads], [float(u.num_samples) for u in grads])
        old = self.grad_mean_
        self.grad_mean_ = {k: self.ema * old[k] + (1 - self.ema) * v for k, v in new.items()} if old else new
        return dict(global_state)  # the first pass trains nothing

    # ----------------------------------------------------------------- client
    @staticmethod
    def _first_pass(ctx: ClientContext) -> bool:
        return ctx.stage == 0

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=1, kind="observe")] if self._first_pass(ctx) else super().local_phases(ctx)

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        grads = classifier_grad(model, batch.feats, batch.y, ctx.info.head_keys)
        acc = ctx.scratch.setdefault("grad_sum", {k: torch.zeros_like(v) for k, v in grads.items()})
        for k, g in grads.items():
            acc[k].add_(g * len(batch.y))  # per-example sum: the split's mean gradient after division

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        if not self._first_pass(ctx):
            return Message()
        n = max(ctx.num_samples, 1)
        return Message(arrays={GRAD: {k: v / n for k, v in ctx.scratch.get("grad_sum", {}).items()}})

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        target = ctx.message.arrays.get(GRAD_MEAN)
        if not target or self.penalty == 0:
            return batch.loss
        grads = classifier_grad(model, batch.feats, batch.y, ctx.info.head_keys, create_graph=True)
        gap = sum((g - target[k].to(g.device)).pow(2).sum() for k, g in grads.items())
        return batch.loss + self.penalty * gap
