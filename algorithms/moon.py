"""Model-Contrastive Federated Learning (MOON) [Li, He, Song, 2021].

Paper: Q. Li, B. He, D. Song, "Model-Contrastive Federated Learning", CVPR 2021, arXiv:2103.16257.

Key idea: under label skew, local models learn representations that drift away from the global
model's. MOON adds a contrastive term on the representation ``z`` of each image: the global
model's representation ``z_glob`` of the same image is the positive, the client's previous local
model's ``z_prev`` the negative::

    l_con = -log( exp(sim(z, z_glob) / tau) / (exp(sim(z, z_glob) / tau) + exp(sim(z, z_prev) / tau)) )
    loss  = cross_entropy + mu * l_con            (sim: cosine similarity)

The server aggregates as FedAvg. The paper puts a projection head on the encoder; here ``z`` is the
classifier's input (the pooled features every model of ``fl_core.models`` exposes), as in the
paper's ablation without a projection head. ``tau = 0.5`` is the paper's default; ``mu`` is 5 for
CIFAR-10 and 1 for CIFAR-100 and Tiny-ImageNet in the paper; the default here is the more
conservative ``mu = 1``, since medical sets are small and a strong contrastive term slows the
cross-entropy fit. In a client's first round there is no previous local model: the paper's code
uses the global model as the negative, which makes ``l_con`` the constant ``log 2`` with zero
gradient, so the term is simply left out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.aggregation import clone_state
from algorithms.api import Batch, ClientContext, FLAlgorithm, Message, features
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="moon",
        full_name="Model-Contrastive Federated Learning (MOON)",
        key_idea="A contrastive loss pulls each local representation toward the global model's "
        "representation of the same image and away from the previous local model's.",
        category="label_skew",
        also_fits=("generic",),
        choose_when="Clients' label distributions are skewed and the model is a deep feature "
        "extractor; costs two extra forward passes per batch, so prefer it when compute allows.",
        paper="Li, He, Song, 2021, arXiv:2103.16257",
    ),
)

_PREV = "moon_previous_model"


@register("moon")
class Moon(FLAlgorithm):
    """FedAvg plus MOON's model-contrastive term on the client.

    Args:
        mu: weight of the contrastive term (paper: 5 on CIFAR-10, 1 on CIFAR-100/Tiny-ImageNet).
        tau: temperature of the contrastive softmax (paper: 0.5).
    """

    def __init__(self, mu: float = 1.0, tau: float = 0.5) -> None:
        self.mu = mu
        self.tau = tau

    def validate(self) -> None:
        if self.mu < 0 or self.tau <= 0:
            raise ValueError(f"MOON needs mu >= 0 and tau > 0, got mu={self.mu}, tau={self.tau}")

    def contrastive(self, z: Tensor, z_glob: Tensor, z_prev: Tensor) -> Tensor:
        """Mean model-contrastive loss of a batch: positive ``z_glob``, negative ``z_prev``."""
        pos = F.cosine_similarity(z, z_glob, dim=-1) / self.tau
        neg = F.cosine_similarity(z, z_prev, dim=-1) / self.tau
        logits = torch.stack([pos, neg], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(z), dtype=torch.long, device=z.device))

    def begin_client(self, ctx: ClientContext) -> None:
        if self.mu == 0 or _PREV not in ctx.state:
            return
        ctx.scratch["global_model"] = ctx.make_model(ctx.global_state)
        ctx.scratch["previous_model"] = ctx.make_model(ctx.state[_PREV])

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if "previous_model" not in ctx.scratch:
            return batch.loss
        with torch.no_grad():
            z_glob, _ = features(ctx.scratch["global_model"], batch.x)
            z_prev, _ = features(ctx.scratch["previous_model"], batch.x)
        return batch.loss + self.mu * self.contrastive(batch.feats, z_glob, z_prev)

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        ctx.state[_PREV] = clone_state(model.state_dict())
        ctx.scratch.clear()
        return Message()
