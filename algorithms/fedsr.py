"""Simple representations for federated domain generalisation (FedSR) [Nguyen et al., 2022].

Paper: A. T. Nguyen, P. Torr, S.-N. Lim, "FedSR: A Simple and Effective Domain Generalization Method
for Federated Learning", NeurIPS 2022 (OpenReview mrt90D00aQX; no arXiv version).

Key idea: learn a *simple* representation that generalises to unseen sites. The feature extractor
outputs a Gaussian ``N(mu(x), diag sigma(x)^2)`` and the classifier sees a sample
``z = mu + sigma * eps`` (the mean at evaluation). Two regularisers are added to the cross-entropy,
both computed on the client alone:

* L2R: ``alpha_l2r * E ||z||^2``, which keeps the representation's energy small;
* CMI: ``alpha_cmi * KL(N(mu(x), sigma(x)) || N(r_mu[y], r_sigma[y]))``, an upper bound of the
  conditional mutual information ``I(x; z | y)`` with learnt per-class reference Gaussians, which
  removes from ``z`` what is about the site rather than the label.

The probabilistic encoder, the classifier on ``z`` and the reference Gaussians are ordinary
parameters of a model wrapper (``build_model``), averaged by FedAvg. Defaults follow the paper's
code (also FL-bench): ``alpha_l2r = 0.01``, ``alpha_cmi = 5e-4``; ``z_dim = None`` keeps the
backbone's feature size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.api import Batch, ClientContext, FLAlgorithm
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedsr",
        full_name="FedSR (simple probabilistic representations)",
        key_idea="A Gaussian representation regularised by its L2 norm and by a conditional mutual "
        "information bound (KL to learnt per-class reference Gaussians), so the features keep the "
        "label and drop what identifies the site.",
        category="domain_generalisation",
        also_fits=("feature_skew",),
        choose_when="Sites differ in scanner or staining (feature skew) and the model must also work "
        "at a site that did not train; costs nothing beyond FedAvg's communication.",
        paper="Nguyen et al., NeurIPS 2022 (no arXiv version; OpenReview mrt90D00aQX)",
    ),
)


class ProbabilisticModel(nn.Module):
    """A backbone whose features become a Gaussian ``z``; a new classifier reads ``z``.

    The backbone's own classifier is replaced by an identity, so it holds no unused weights.
    """

    def __init__(self, backbone: nn.Module, num_classes: int, z_dim: int | None = None) -> None:
        super().__init__()
        feat_dim = backbone.get_classifier().in_features
        z = z_dim or feat_dim
        self.backbone = backbone
        _replace_classifier(backbone)
        self.encoder = nn.Linear(feat_dim, 2 * z)
        self.head = nn.Linear(z, num_classes)
        self.r_mu = nn.Parameter(torch.zeros(num_classes, z))
        self.r_sigma = nn.Parameter(torch.ones(num_classes, z))
        self.last: tuple[Tensor, Tensor] | None = None

    def forward_features(self, x: Tensor) -> Tensor:
        return self.backbone.forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        mu, s = self.encoder(self.backbone.forward_head(x, pre_logits=True)).chunk(2, dim=1)
        sigma = F.softplus(s) + 1e-6
        self.last = (mu, sigma)
        z = mu + sigma * torch.randn_like(mu) if self.training else mu
        return z if pre_logits else self.head(z)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head


def _replace_classifier(backbone: nn.Module) -> None:
    head = backbone.get_classifier()
    for name, mod in backbone.named_children():
        if mod is head:
            setattr(backbone, name, nn.Identity())
            return
    raise ValueError("FedSR needs a backbone whose classifier is a direct child module (timm models, tiny_cnn)")


def gaussian_kl(mu: Tensor, sigma: Tensor, r_mu: Tensor, r_sigma: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(r_mu, r_sigma^2)) per row, summed over dimensions (diagonal Gaussians)."""
    return (torch.log(r_sigma / sigma) + (sigma ** 2 + (mu - r_mu) ** 2) / (2 * r_sigma ** 2) - 0.5).sum(dim=1)


@register("fedsr")
class FedSR(FLAlgorithm):
    """FedAvg on a probabilistic-representation model with the L2R and CMI regularisers.

    Args:
        alpha_l2r: weight of the representation's squared L2 norm.
        alpha_cmi: weight of the conditional mutual information bound.
        z_dim: size of the representation (``None``: the backbone's feature size).
    """

    def __init__(self, alpha_l2r: float = 0.01, alpha_cmi: float = 5e-4, z_dim: int | None = None) -> None:
        self.alpha_l2r = alpha_l2r
        self.alpha_cmi = alpha_cmi
        self.z_dim = z_dim

    def validate(self) -> None:
        if self.alpha_l2r < 0 or self.alpha_cmi < 0:
            raise ValueError(f"FedSR alpha_l2r and alpha_cmi must be >= 0, got {self.alpha_l2r}, {self.alpha_cmi}")
        if self.z_dim is not None and self.z_dim < 1:
            raise ValueError(f"FedSR z_dim must be >= 1 or None (the backbone's feature size), got {self.z_dim}")

    def build_model(self, model: nn.Module) -> nn.Module:
        return ProbabilisticModel(model, model.get_classifier().out_features, self.z_dim)

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        loss = batch.loss
        last = model.last if isinstance(model, ProbabilisticModel) else None
        if last is not None:
            model.last = None  # it holds the graph; a deep copy of the model must not meet it
        if self.alpha_l2r:
            loss = loss + self.alpha_l2r * batch.feats.pow(2).sum(dim=1).mean()
        if self.alpha_cmi and last is not None:
            mu, sigma = last
            r_sigma = F.softplus(model.r_sigma[batch.y]) + 1e-6
            loss = loss + self.alpha_cmi * gaussian_kl(mu, sigma, model.r_mu[batch.y], r_sigma).mean()
        return loss
