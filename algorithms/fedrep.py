"""Exploiting Shared Representations for Personalized Federated Learning (FedRep) [Collins et al., 2021].

Paper: L. Collins, H. Hassani, A. Mokhtari, S. Shakkottai, "Exploiting Shared Representations for
Personalized Federated Learning", ICML 2021, arXiv:2102.07078.

Key idea: clients share a low-dimensional representation (the body) and each keeps its own head.
Unlike FedPer, local training alternates (Algorithm 1): first the head is trained for many epochs
with the body frozen, so it fits the current shared representation well; then the body is trained
for one epoch with that new head frozen, and only the body is sent to the server and averaged.
Defaults follow the paper's experiments: 10 head epochs, 1 body epoch. Note that in the head phase
the body's parameters are frozen, but its BatchNorm running statistics (buffers, not parameters)
still follow the batches, since the engine trains in training mode.
"""

from __future__ import annotations

from algorithms.api import ClientContext, FLAlgorithm, ModelInfo, Phase
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedrep",
        full_name="Federated Representation Learning (FedRep)",
        key_idea="Each client first fits its own head on the frozen shared body, then updates the body "
        "with the head frozen; only the body is averaged.",
        category="personalised",
        choose_when="Sites have different label distributions but similar images and each site wants a "
        "model for its own data; more robust than FedPer when local data are few, since the body is "
        "learnt against well-fitted heads.",
        paper="Collins et al., 2021, arXiv:2102.07078",
    ),
)


@register("fedrep")
class FedRep(FLAlgorithm):
    """Head first (body frozen), then body (head frozen); the head stays local.

    Args:
        head_epochs: local epochs on the head per round (paper: 10).
        body_epochs: local epochs on the body per round (paper: 1).
    """

    primary_model = "personal"

    def __init__(self, head_epochs: int = 10, body_epochs: int = 1) -> None:
        self.head_epochs = head_epochs
        self.body_epochs = body_epochs

    def validate(self) -> None:
        if self.head_epochs < 1 or self.body_epochs < 1:
            raise ValueError(f"FedRep head_epochs and body_epochs must be >= 1, got "
                             f"{self.head_epochs}, {self.body_epochs}")

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(info.head_keys)

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        head = frozenset(ctx.info.head_keys)
        body = frozenset(k for k in ctx.info.param_keys if k not in head)
        return [Phase(epochs=self.head_epochs, trainable=head), Phase(epochs=self.body_epochs, trainable=body)]
