"""Federated parameter alignment and client synchronisation (FedAS) [Yang et al., 2024].

Paper: X. Yang, W. Huang, M. Ye, "FedAS: Bridging Inconsistency in Personalized Federated Learning",
CVPR 2024 (CVF open access; no arXiv version).

Key idea: two inconsistencies hurt personalised FL with a shared body and personal heads. Within a
client, the freshly received shared body no longer matches the client's personal head; FedAS
*aligns* it first: the body is trained so that its per-class mean features on the local data match
the class prototypes of the client's previous model (mean-squared error), then normal local
training follows. Across clients, stragglers with under-trained models should not weigh as much in
the mean; FedAS *synchronises* by weighting each client's upload by the trace of its Fisher
information on local data (the sum of squared gradients of the log-likelihood), measured after
local training. The head stays on the client.

Here the previous model's prototypes are computed by a pass over the training data at the end of
each round (``Phase(kind="observe")``, the same features the next round's alignment needs), and the
Fisher trace in the same pass; both stay on the client except the trace, one scalar uploaded in the
message config. Defaults follow FL-bench: one alignment epoch with learning rate 0.01.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.aggregation import StateDict, weighted_mean
from algorithms.api import (
    PERSONAL_STATE,
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
        name="fedas",
        full_name="FedAS (parameter alignment and client synchronisation)",
        key_idea="Personal heads; the received body is first aligned to the client's previous class "
        "prototypes, and uploads are weighted by the trace of each client's Fisher information.",
        category="personalised",
        also_fits=("label_skew",),
        choose_when="Sites want personal models and some take part rarely or train little (stragglers); "
        "costs an alignment epoch and a Fisher pass per round.",
        paper="Yang et al., CVPR 2024 (no arXiv version; CVF open access)",
    ),
)

_PROTO = "fedas_prototypes"
FIM = "fim_trace"


@register("fedas")
class FedAS(FLAlgorithm):
    """Personal head, prototype alignment of the received body, Fisher-trace-weighted mean.

    Args:
        alignment_epochs: epochs of body alignment before local training.
        alignment_lr: learning rate of the alignment.
    """

    primary_model = "personal"

    def __init__(self, alignment_epochs: int = 1, alignment_lr: float = 0.01) -> None:
        self.alignment_epochs = alignment_epochs
        self.alignment_lr = alignment_lr

    def validate(self) -> None:
        if self.alignment_epochs < 0 or self.alignment_lr <= 0:
            raise ValueError(f"FedAS needs alignment_epochs >= 0 and alignment_lr > 0, got "
                             f"{self.alignment_epochs}, {self.alignment_lr}")

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(info.head_keys)

    # ----------------------------------------------------------------- server
    def combine(self, updates: Sequence[ClientUpdate], server: ServerContext) -> StateDict:
        traces = [float(u.message.config.get(FIM, 0.0)) for u in updates]
        if sum(traces) <= 0:  # no Fisher traces (hand-built updates, no step taken): sample counts
            traces = [float(u.num_samples) for u in updates]
        return weighted_mean([u.weights for u in updates], traces)

    # ----------------------------------------------------------------- client
    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        body = frozenset(k for k in ctx.info.param_keys if k not in ctx.info.head_keys)
        align = ([Phase(self.alignment_epochs, trainable=body, lr=self.alignment_lr)]
                 if _PROTO in ctx.state and self.alignment_epochs else [])
        return [*align, *super().local_phases(ctx), Phase(epochs=1, kind="observe")]

    def _aligning(self, ctx: ClientContext) -> bool:
        return ctx.phase is not None and ctx.phase.lr == self.alignment_lr and ctx.phase.trainable is not None

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if not self._aligning(ctx):
            return batch.loss
        return alignment_loss(batch.feats, batch.y, ctx.state[_PROTO])

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.scratch["fim"] = 0.0

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        c, d = ctx.info.num_classes, batch.feats.shape[1]
        s = ctx.scratch.setdefault("sum", torch.zeros(c, d, device=batch.feats.device))
        n = ctx.scratch.setdefault("count", torch.zeros(c, device=batch.feats.device))
        s.index_add_(0, batch.y, batch.feats)
        n.index_add_(0, batch.y, torch.ones_like(batch.y, dtype=s.dtype))
        params = [p for p in model.parameters()]
        with torch.enable_grad():
            loss = F.cross_entropy(model(batch.x), batch.y)  # the negative log-likelihood of the labels
            grads = torch.autograd.grad(loss, params, allow_unused=True)
        ctx.scratch["fim"] += float(sum(g.pow(2).sum() for g in grads if g is not None))

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        count = ctx.scratch["count"]
        seen = count > 0
        ctx.state[_PROTO] = {"mean": ctx.scratch["sum"] / count.clamp_min(1)[:, None], "seen": seen.float()}
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return Message(config={FIM: ctx.scratch["fim"]})


def alignment_loss(feats: Tensor, y: Tensor, prototypes: dict[str, Tensor]) -> Tensor:
    """Sum over the batch's classes of the MSE between their mean feature and the class prototype."""
    loss = feats.new_zeros(())
    for label in y.unique().tolist():
        if prototypes["seen"][label] > 0:
            loss = loss + F.mse_loss(feats[y == label].mean(dim=0), prototypes["mean"][label].to(feats.device))
    return loss
