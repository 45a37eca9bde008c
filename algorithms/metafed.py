"""MetaFed: federated learning among federations with cyclic knowledge distillation [Chen et al., 2023].

Paper: Y. Chen, W. Lu, X. Qin, J. Wang, X. Xie, "MetaFed: Federated Learning among Federations with
Cyclic Knowledge Distillation for Personalized Healthcare", IEEE TNNLS 2023, arXiv:2206.08516.

Key idea: no central aggregation. The federations (here: sites) form a ring and pass a model along
it; each site keeps its own model and, in turn, learns from its predecessor's model:
1. *Common knowledge accumulation*: site ``c`` trains on its data with cross-entropy plus
   ``lambda * MSE(f_c(x), f_{c-1}(x))`` towards the predecessor's features (knowledge distillation),
   if its own model is already good (accuracy above ``threshold``); a site whose model is not yet
   good instead starts from the predecessor's weights and trains them without distillation. Its
   model then goes to the next site; the first site of a round learns from the last one of the
   previous round (in round 1 sites start from the model handed on).
2. *Personalisation*: every site distils from the ring's final model, the common knowledge, with a
   strength set by how it compares with its own model: 0 if the common model is no better and below
   ``personal_threshold`` accuracy, else ``lambda * 10^min(1, 5 (acc_common - acc_own)) / 10``.
Here every round is one ring pass (one stage per sampled client, :meth:`stages`) followed by a
personalisation stage over all of them whose result is the personalised model; each site carries
its own ring model to the next round. The "global" model is the ring's last model.
Substitute: accuracies are measured on the site's training split (the hooks expose no validation
labels during training); the paper uses a validation split.
Defaults: ``lambda = 1``, ``threshold = 0.6``, ``personal_threshold = 0.5`` (the official code's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.aggregation import StateDict
from algorithms.api import (
    PERSONAL_STATE,
    Batch,
    ClientContext,
    ClientUpdate,
    FLAlgorithm,
    Message,
    Phase,
    ServerContext,
    features,
)
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="metafed",
        full_name="MetaFed (cyclic knowledge distillation among federations)",
        key_idea="Sites pass a model around a ring, each distilling its predecessor's features into its own "
        "model (or adopting it while its own is weak); a final distillation from the ring's model personalises.",
        category="personalised",
        also_fits=("feature_skew",),
        choose_when="Few hospitals or federations with no trusted central server, differing in data style; "
        "training is sequential (one site at a time), so a round takes N times longer.",
        paper="Chen et al., 2023, arXiv:2206.08516",
    ),
)

OWN = "metafed_own"
FLAG = "metafed_good"
KIND = "metafed_stage"


def personal_strength(own_acc: float, common_acc: float, lam: float, personal_threshold: float) -> float:
    """MetaFed's distillation weight for the personalisation stage."""
    if common_acc <= own_acc and common_acc < personal_threshold:
        return 0.0
    return 10 ** min(1.0, (common_acc - own_acc) * 5) / 10 * lam


@register("metafed")
class MetaFed(FLAlgorithm):
    """Ring of sites with cyclic feature distillation, then a personalising distillation.

    Args:
        lam: weight lambda of the feature-distillation term.
        threshold: accuracy above which a site distils instead of adopting its predecessor's weights.
        personal_threshold: accuracy the ring's model needs to be distilled when no better than the own.
    """

    primary_model = "personal"

    def __init__(self, lam: float = 1.0, threshold: float = 0.6, personal_threshold: float = 0.5) -> None:
        self.lam = lam
        self.threshold = threshold
        self.personal_threshold = personal_threshold

    def validate(self) -> None:
        if self.lam < 0:
            raise ValueError(f"MetaFed lam must be >= 0, got {self.lam}")
        for name in ("threshold", "personal_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"MetaFed {name} is an accuracy in [0, 1], got {getattr(self, name)}")

    # ----------------------------------------------------------------- server
    def stages(self, server: ServerContext) -> list[tuple[int, ...]]:
        return [*((c,) for c in server.sampled), tuple(server.sampled)]

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        personalise = server.stage == len(server.sampled)
        return Message(config={KIND: "personalise" if personalise else "accumulate"})

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate], server: ServerContext) -> StateDict:
        if server.stage == len(server.sampled):  # personalisation: the ring's model stays
            return dict(global_state)
        return super().aggregate(global_state, updates, server)  # one client: its model goes on

    # ----------------------------------------------------------------- client
    def _personalise(self, ctx: ClientContext) -> bool:
        return ctx.message.config.get(KIND) == "personalise"

    def begin_client(self, ctx: ClientContext) -> None:
        own = ctx.state.get(OWN)
        ctx.scratch["teacher"] = ctx.make_model(ctx.global_state)
        if own is not None and (self._personalise(ctx) or ctx.state.get(FLAG, False)):
            ctx.state[PERSONAL_STATE] = own  # train the own model (distilling the received one)
            ctx.scratch["lam"] = self.lam
        else:
            ctx.state.pop(PERSONAL_STATE, None)  # adopt the received model and train it
            ctx.scratch["lam"] = 0.0

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        train = Phase(epochs=ctx.local_epochs, model="personal")
        score = Phase(epochs=1, kind="observe", model="personal")
        return [score, train] if self._personalise(ctx) else [train, score]

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        acc = ctx.scratch.setdefault("acc", {"own": 0, "common": 0, "n": 0})
        acc["own"] += int((batch.logits.argmax(1) == batch.y).sum())
        acc["common"] += int((ctx.scratch["teacher"](batch.x).argmax(1) == batch.y).sum())
        acc["n"] += len(batch.y)

    def after_phase(self, ctx: ClientContext, model: nn.Module) -> None:
        if ctx.phase is None or ctx.phase.kind != "observe":
            return
        acc = ctx.scratch.pop("acc")
        own, common = acc["own"] / max(acc["n"], 1), acc["common"] / max(acc["n"], 1)
        if self._personalise(ctx):
            ctx.scratch["lam"] = personal_strength(own, common, self.lam, self.personal_threshold)
        else:
            ctx.state[FLAG] = bool(ctx.state.get(FLAG, False) or own > self.threshold)

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        lam = ctx.scratch.get("lam", 0.0)
        if lam == 0:
            return batch.loss
        teacher_feats, _ = features(ctx.scratch["teacher"], batch.x)
        return batch.loss + lam * F.mse_loss(batch.feats, teacher_feats.detach())

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        if not self._personalise(ctx):
            own = ctx.state[PERSONAL_STATE]
            ctx.state[OWN] = own
            model.load_state_dict(own)  # the ring carries this site's own model on
        return Message()
