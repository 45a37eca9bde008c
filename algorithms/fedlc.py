"""Federated Learning with Label Distribution Skew via Logits Calibration (FedLC) [Zhang et al., 2022].

Paper: J. Zhang, Z. Li, B. Li, J. Xu, S. Wu, S. Ding, C. Wu, "Federated Learning with Label
Distribution Skew via Logits Calibration", ICML 2022, arXiv:2209.00189.

Key idea: under label skew a client's model over-fits its frequent classes and its logits for rare
classes are pushed down, so the averaged model is biased. FedLC trains each client on calibrated
logits that subtract a pairwise label margin depending on the client's count ``n_c`` of each class::

    calibrated_c = logit_c - tau * n_c ** (-1/4)
    loss = cross_entropy(calibrated, y)

A class with few local examples gets a larger offset, so the model must produce a larger raw logit
for it to reach the same loss; evaluation uses the raw logits. A class absent from the client
(``n_c = 0``) has an infinite offset: its calibrated logit is ``-inf`` and it leaves the local
softmax (the limit of the formula, and what the authors' reference implementations compute), so
the client neither pushes its logit down nor up. The server aggregates as FedAvg. ``tau = 1.0``;
``tau = 0`` is FedAvg.
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
        name="fedlc",
        full_name="Federated Logits Calibration (FedLC)",
        key_idea="Each client trains on logits shifted by tau * n_c^(-1/4), a margin from its own label "
        "counts, which corrects the bias label skew puts on rare and absent classes.",
        category="label_skew",
        choose_when="Clients' label distributions differ strongly (some sites miss classes or have "
        "very few examples of them); costs nothing extra over FedAvg.",
        paper="Zhang et al., 2022, arXiv:2209.00189",
    ),
)


@register("fedlc")
class FedLC(FLAlgorithm):
    """FedAvg whose client loss is cross-entropy on label-frequency-calibrated logits.

    Args:
        tau: scale of the calibration margin (paper: 1.0).
    """

    def __init__(self, tau: float = 1.0) -> None:
        self.tau = tau

    def validate(self) -> None:
        if self.tau < 0:
            raise ValueError(f"FedLC tau must be >= 0, got {self.tau}")

    def offsets(self, label_counts: Tensor) -> Tensor:
        """``tau * n_c^(-1/4)`` per class; ``inf`` for classes the client does not have."""
        n = label_counts.to(torch.float32)
        if self.tau == 0:  # no calibration at all: plain cross-entropy, FedAvg
            return torch.zeros_like(n)
        off = torch.full_like(n, float("inf"))
        present = n > 0
        off[present] = self.tau * n[present].pow(-0.25)
        return off

    def calibrated(self, logits: Tensor, label_counts: Tensor) -> Tensor:
        """The paper's calibrated logits: ``logit_c - tau * n_c^(-1/4)``."""
        return logits - self.offsets(label_counts).to(logits.device, logits.dtype)

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        return F.cross_entropy(self.calibrated(batch.logits, ctx.label_counts), batch.y)
