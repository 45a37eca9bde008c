"""Federated Averaging with Body Aggregation and Body Update (FedBABU) [Oh et al., 2022].

Paper: J. Oh, S. Kim, S.-Y. Yun, "FedBABU: Towards Enhanced Representation for Federated Image
Classification", ICLR 2022, arXiv:2106.06042.

Key idea: during federated training the classifier head stays at its random initialisation on every
client and on the server; only the body is trained and averaged. Because all clients share one fixed
head, their bodies learn representations for the same decision boundaries and do not drift apart
under label skew, which the paper shows yields a body that personalises far better. Personalisation
is fine-tuning: each client fine-tunes the whole model on its own data for ``finetune_epochs``
(paper: 5) and evaluates that as its personalised model.

Here the fine-tuned model is re-derived every round from the global weights the client received that
round (``Phase(model="personal")`` after dropping last round's copy), so "personalised" always means
"this round's global model fine-tuned locally", as FedBABU's evaluation protocol does.
"""

from __future__ import annotations

from algorithms.api import PERSONAL_STATE, ClientContext, FLAlgorithm, Phase
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedbabu",
        full_name="FedBABU (Body Aggregation and Body Update)",
        key_idea="The classifier head is frozen at its random initialisation during federated training, so "
        "only the body is trained and averaged; each client then fine-tunes the whole model on its own data.",
        category="personalised",
        also_fits=("label_skew",),
        choose_when="Label distributions differ between sites and each site is evaluated on its own data: "
        "a shared body learnt against one fixed head, fine-tuned per site; also gives a usable global body.",
        paper="Oh et al., 2022, arXiv:2106.06042",
    ),
)


@register("fedbabu")
class FedBABU(FLAlgorithm):
    """Body-only federated training with a fixed head; whole-model fine-tuning for personalisation.

    Args:
        finetune_epochs: local epochs of fine-tuning for the personalised model (paper: 5).
    """

    primary_model = "personal"

    def __init__(self, finetune_epochs: int = 5) -> None:
        self.finetune_epochs = finetune_epochs

    def validate(self) -> None:
        if self.finetune_epochs < 0:
            raise ValueError(f"FedBABU finetune_epochs must be >= 0 (0: no personalised model), "
                             f"got {self.finetune_epochs}")

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.state.pop(PERSONAL_STATE, None)   # fine-tune afresh from this round's global weights

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        head = set(ctx.info.head_keys)
        body = frozenset(k for k in ctx.info.param_keys if k not in head)
        phases = [Phase(epochs=ctx.local_epochs, trainable=body)]
        if self.finetune_epochs:
            phases.append(Phase(epochs=self.finetune_epochs, model="personal"))
        return phases
