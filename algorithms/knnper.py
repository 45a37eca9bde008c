"""Personalised FL through local memorisation (kNN-Per) [Marfoq et al., 2022].

Paper: O. Marfoq, G. Neglia, R. Vidal, L. Kameni, "Personalized Federated Learning through Local
Memorization", ICML 2022, arXiv:2111.09360.

Key idea: a global model is trained with FedAvg; each client memorises its own training data in a
datastore of (representation, label) pairs computed with the global model's feature extractor. A
client's personalised prediction interpolates the global model's output with a k-nearest-neighbour
classifier over that datastore::

    p(y | x) = lam * p_kNN(y | x) + (1 - lam) * p_global(y | x),
    p_kNN(y | x) proportional to sum over the k nearest neighbours j with y_j = y of exp(-d(x, x_j) / T)

The datastore never leaves the client. Here it is built by a pass over the client's training split
(``Phase(kind="observe")``) with the weights it received at the start of the round, before local
training, so the datastore and the model it is queried with always share one representation: the
personalised model is that received global model plus the kNN memory (one round behind the newest
global model). Defaults: ``k = 10`` neighbours (paper), ``lam = 0.5`` and temperature ``T = 1.0``
(FL-bench's defaults; the paper tunes lam per client on validation data), Euclidean distance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.api import (
    PERSONAL_STATE,
    Batch,
    ClientContext,
    EvalContext,
    FLAlgorithm,
    Message,
    Phase,
    features,
)
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="knnper",
        full_name="kNN-Per (personalisation by local memorisation)",
        key_idea="FedAvg for a global model; each client keeps a datastore of its training features "
        "and labels and interpolates the global output with a k-nearest-neighbour vote over it.",
        category="personalised",
        also_fits=("label_skew", "feature_skew"),
        choose_when="Sites have different label or feature distributions and each wants a model for "
        "its own data without extra training; memory grows with the local data set.",
        paper="Marfoq et al., 2022, arXiv:2111.09360",
    ),
)

_STORE = "knnper_datastore"


@register("knnper")
class KNNPer(FLAlgorithm):
    """FedAvg plus a client-side kNN memory interpolated at evaluation.

    Args:
        k: neighbours the kNN vote uses.
        lam: weight of the kNN distribution in the interpolation (0: the global model alone).
        temperature: T in the neighbours' weights exp(-distance / T).
    """

    primary_model = "personal"

    def __init__(self, k: int = 10, lam: float = 0.5, temperature: float = 1.0) -> None:
        self.k = k
        self.lam = lam
        self.temperature = temperature

    def validate(self) -> None:
        if self.k < 1 or not 0 <= self.lam <= 1 or self.temperature <= 0:
            raise ValueError(f"kNN-Per needs k >= 1, lam in [0, 1] and temperature > 0; got k={self.k}, "
                             f"lam={self.lam}, temperature={self.temperature}")

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=1, kind="observe"), *super().local_phases(ctx)]

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.scratch["feats"], ctx.scratch["labels"] = [], []

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        ctx.scratch["feats"].append(batch.feats.detach().float().cpu())
        ctx.scratch["labels"].append(batch.y.detach().cpu())

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        if ctx.scratch["feats"]:
            ctx.state[_STORE] = {"feats": torch.cat(ctx.scratch["feats"]), "labels": torch.cat(ctx.scratch["labels"])}
            ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in ctx.global_state.items()}
        return super().end_client(ctx, model)

    def knn_probs(self, query: Tensor, store: dict[str, Tensor], num_classes: int) -> Tensor:
        """Distance-weighted class distribution of each query's k nearest datastore entries."""
        keys, labels = store["feats"].to(query.device), store["labels"].to(query.device)
        dist = torch.cdist(query.float(), keys)
        d, idx = dist.topk(min(self.k, len(labels)), dim=1, largest=False)
        w = torch.softmax(-d / self.temperature, dim=1)
        probs = torch.zeros(len(query), num_classes, device=query.device)
        return probs.scatter_add_(1, labels[idx], w)

    def evaluation_logits(self, ctx: EvalContext, model: nn.Module, x: Tensor) -> Tensor:
        store = ctx.state.get(_STORE)
        if ctx.model_kind == "global" or store is None or self.lam == 0:
            return model(x)
        feats, logits = features(model, x)
        p = self.lam * self.knn_probs(feats, store, ctx.info.num_classes) + (1 - self.lam) * F.softmax(logits, 1)
        return p.clamp_min(1e-12).log()
