"""Federated Robust Decoupling (FedRoD) [Chen & Chao, 2022].

Paper: H.-Y. Chen, W.-L. Chao, "On Bridging Generic and Personalized Federated Learning for Image
Classification", ICLR 2022, arXiv:2107.00778.

Key idea: one body, two heads. The *generic* head and the body are trained with the balanced softmax
loss (cross-entropy on ``logits + log(n_c)``, ``n_c`` the client's class counts), an estimate of the
class-balanced risk, so the averaged generic model is not biased towards each client's majority
classes; they are averaged as in FedAvg. The *personal* head stays on the client and is trained with
plain cross-entropy on the sum of the generic logits and its own (both inputs detached, so the
personal loss changes neither the body nor the generic head). The global model predicts with the
generic head; a client's personalised model predicts with ``generic(z) + personal(z)``. The personal
head starts at zero, so a client's personalised prediction starts as the generic one. The paper's
optional hypernetwork that generates personal heads is left out (its linear-head variant is the one
FL-bench and PFLlib run by default).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.api import Batch, ClientContext, EvalContext, FLAlgorithm, ModelInfo, features
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedrod",
        full_name="Federated Robust Decoupling (FedRoD)",
        key_idea="A body with a generic head trained with the class-balanced softmax loss and averaged, plus "
        "a personal head on each client trained on top of the generic logits; one run gives a good global "
        "and a good personalised model.",
        category="personalised",
        also_fits=("label_skew", "generic"),
        choose_when="Label distributions differ between sites and both a consortium-wide model and a model "
        "per site are wanted; the balanced loss also helps rare classes in the global model.",
        paper="Chen & Chao, 2022, arXiv:2107.00778",
    ),
)

PERSONAL_HEAD = "personal_head"


def balanced_softmax_loss(logits: Tensor, y: Tensor, label_counts: Tensor) -> Tensor:
    """Cross-entropy on ``logits + log(n_c)`` (Ren et al., 2020); classes the client lacks drop out."""
    log_prior = label_counts.to(device=logits.device, dtype=logits.dtype).log()
    return F.cross_entropy(logits + log_prior, y)


@register("fedrod")
class FedRoD(FLAlgorithm):
    """Generic head (balanced softmax, averaged) plus a personal head (cross-entropy, local)."""

    primary_model = "personal"

    def __init__(self) -> None:
        pass

    def build_model(self, model: nn.Module) -> nn.Module:
        clf = model.get_classifier()
        head = nn.Linear(clf.in_features, clf.out_features)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        setattr(model, PERSONAL_HEAD, head)
        return model

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(k for k in info.state_keys if k.startswith(PERSONAL_HEAD + "."))

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        generic = balanced_softmax_loss(batch.logits, batch.y, ctx.label_counts)
        personal_logits = batch.logits.detach() + getattr(model, PERSONAL_HEAD)(batch.feats.detach())
        return generic + F.cross_entropy(personal_logits, batch.y)

    def evaluation_logits(self, ctx: EvalContext, model: nn.Module, x: Tensor) -> Tensor:
        feats, logits = features(model, x)
        if ctx.model_kind == "global":
            return logits
        return logits + getattr(model, PERSONAL_HEAD)(feats)
