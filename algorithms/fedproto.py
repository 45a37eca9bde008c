"""Federated Prototype Learning (FedProto) [Tan et al., 2022].

Paper: Y. Tan, G. Long, L. Liu, T. Zhou, Q. Lu, J. Jiang, C. Zhang, "FedProto: Federated Prototype
Learning across Heterogeneous Clients", AAAI 2022, arXiv:2105.00243.

Key idea: clients exchange class *prototypes* (the mean feature vector of each class) instead of
weights, so every site keeps its own model (even of another architecture). After local training a
client computes its prototypes ``C_i^j`` over its training data and uploads them with their class
counts; the server's global prototype of class ``j`` is the sample-weighted mean
``C^j = sum_i |D_i^j| C_i^j / sum_i |D_i^j|`` (Eq. 6). Local training minimises cross-entropy plus
``lambda * || f(x) - C^y ||^2`` (mean squared error to the global prototype of the example's class,
Eq. 8), which pulls every site's feature space onto a shared one. No weights leave a client, so the
personalised (local) model is what is evaluated; the global model stays at its initial weights.
Default ``lambda = 1`` (the paper's and FL-bench's).

Shares beyond weights: per-class mean features and per-class sample counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.aggregation import StateDict
from algorithms.api import (
    Batch,
    ClientContext,
    ClientUpdate,
    FLAlgorithm,
    Message,
    ModelInfo,
    Phase,
    ServerContext,
)
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedproto",
        full_name="Federated Prototype Learning (FedProto)",
        key_idea="Clients keep their models and exchange only class prototypes (mean features per class, "
        "with class counts); local training pulls features to the sample-weighted global prototypes. "
        "Shares class-mean features and label counts, no weights.",
        category="personalised",
        also_fits=("feature_skew",),
        choose_when="Sites must not share weights (or run different models) and may share class-mean "
        "features and label counts; each site then gets its own model aligned to a shared feature space.",
        paper="Tan et al., 2022, arXiv:2105.00243",
        shares=("prototypes", "statistics"),
    ),
)

#: Message groups: a client's prototypes and counts (up), the global ones (down).
PROTOTYPES = "prototypes"
GLOBAL = "global_prototypes"


def class_sums(ctx: ClientContext, batch: Batch) -> None:
    """Accumulate per-class feature sums and counts of ``batch`` in ``ctx.scratch`` (an observe pass)."""
    c = ctx.info.num_classes
    s = ctx.scratch.setdefault("proto_sum", torch.zeros(c, batch.feats.shape[1], device=batch.feats.device))
    n = ctx.scratch.setdefault("proto_count", torch.zeros(c, device=batch.feats.device))
    s.index_add_(0, batch.y, batch.feats.float())
    n.index_add_(0, batch.y, torch.ones(len(batch.y), device=batch.feats.device))


def local_prototypes(ctx: ClientContext) -> dict[str, Tensor]:
    """``{"mean": [C, d], "count": [C]}`` from :func:`class_sums` (zero rows for absent classes)."""
    s, n = ctx.scratch["proto_sum"], ctx.scratch["proto_count"]
    return {"mean": s / n.clamp(min=1)[:, None], "count": n}


def weighted_prototypes(groups: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """The sample-weighted class means of several clients' ``{"mean", "count"}`` groups."""
    count = sum(g["count"] for g in groups)
    total = sum(g["mean"] * g["count"][:, None] for g in groups)
    return {"mean": total / count.clamp(min=1)[:, None], "count": count}


def prototype_loss(batch: Batch, protos: dict[str, Tensor]) -> Tensor:
    """Mean squared error of each example's features to its class's global prototype (classes that have one)."""
    have = protos["count"][batch.y] > 0
    if not bool(have.any()):
        return torch.zeros((), device=batch.feats.device)
    return F.mse_loss(batch.feats[have], protos["mean"][batch.y[have]].to(batch.feats.dtype))


@register("fedproto")
class FedProto(FLAlgorithm):
    """Local models, exchanged class prototypes, a prototype-alignment regulariser.

    Args:
        lam: weight lambda of the prototype term.
    """

    primary_model = "personal"

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def validate(self) -> None:
        if self.lam < 0:
            raise ValueError(f"FedProto lam must be >= 0 (0: local training only), got {self.lam}")

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(info.state_keys)

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.prototypes_: dict[str, Tensor] = {}

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(arrays={GLOBAL: self.prototypes_}) if self.prototypes_ else Message()

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        groups = [u.message.arrays[PROTOTYPES] for u in updates if PROTOTYPES in u.message.arrays]
        if groups:
            self.prototypes_ = weighted_prototypes(groups)
        return dict(global_state)

    # ----------------------------------------------------------------- client
    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [*super().local_phases(ctx), Phase(epochs=1, kind="observe")]

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        protos = ctx.message.arrays.get(GLOBAL)
        if not protos or self.lam == 0:
            return batch.loss
        return batch.loss + self.lam * prototype_loss(batch, protos)

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        class_sums(ctx, batch)

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        return Message(arrays={PROTOTYPES: local_prototypes(ctx)})
