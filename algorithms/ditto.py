"""Ditto: Fair and Robust Federated Learning Through Personalization [Li et al., 2021].

Paper: T. Li, S. Hu, A. Beirami, V. Smith, "Ditto: Fair and Robust Federated Learning Through
Personalization", ICML 2021, arXiv:2012.04221.

Key idea: two models per client. The global model ``w`` is trained exactly as in FedAvg. Besides,
each client keeps a personal model ``v_k`` across rounds and, in the same round, trains it on its
own data with a proximal term towards the global weights it received (Algorithm 1)::

    v_k <- v_k - lr * (grad F_k(v_k) + lambda * (v_k - w^t))

``lambda`` interpolates between local-only training (0) and the global model (large), which gives
each site a model fitted to its data that is still regularised by the federation (the paper shows
it is both fairer across sites and robust to poisoned clients). The personal model is what the
``personalised`` evaluation uses. Defaults: ``lambda = 0.1`` (the middle of the paper's grid
{0.05, 0.1, 0.2, 0.5, 1, 2}, chosen there per data set by validation); the personal model gets as
many local epochs as the global one, as in the paper's Algorithm 1 (``personal_epochs=None``).
"""

from __future__ import annotations

from torch import Tensor, nn

from algorithms.api import Batch, ClientContext, FLAlgorithm, Phase
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register
from algorithms.regularisers import proximal_term

CATALOG = (
    CatalogEntry(
        name="ditto",
        full_name="Ditto (personalised federated multi-task learning)",
        key_idea="A global model is trained by FedAvg; each client also keeps a personal model "
        "trained on its own data with a proximal term lambda/2 ||v - w_global||^2 towards the global.",
        category="personalised",
        choose_when="Sites differ (label or feature skew) and each wants the best model for its own "
        "data, with fairness across sites or robustness to a bad site mattering; doubles local "
        "compute.",
        paper="Li et al., 2021, arXiv:2012.04221",
    ),
)


@register("ditto")
class Ditto(FLAlgorithm):
    """FedAvg for the global model plus a proximally regularised personal model per client.

    Args:
        lam: weight lambda of the proximal term that ties the personal model to the global one.
        personal_epochs: local epochs for the personal model; ``None`` uses the run's local epochs.
    """

    primary_model = "personal"

    def __init__(self, lam: float = 0.1, personal_epochs: int | None = None) -> None:
        self.lam = lam
        self.personal_epochs = personal_epochs

    def validate(self) -> None:
        if self.lam < 0:
            raise ValueError(f"Ditto lam must be >= 0, got {self.lam}")
        if self.personal_epochs is not None and self.personal_epochs < 1:
            raise ValueError(f"Ditto personal_epochs must be >= 1 or None, got {self.personal_epochs}")

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=ctx.local_epochs),
                Phase(epochs=self.personal_epochs or ctx.local_epochs, model="personal")]

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if ctx.phase is None or ctx.phase.model != "personal" or self.lam == 0:
            return batch.loss
        return batch.loss + 0.5 * self.lam * proximal_term(model, ctx.global_state)
