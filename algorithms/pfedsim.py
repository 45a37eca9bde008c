"""Similarity-aware model aggregation (pFedSim) [Tan et al., 2023].

Paper: J. Tan, Y. Zhou, G. Liu, J. H. Wang, S. Yu, "pFedSim: Similarity-Aware Model Aggregation
Towards Personalized Federated Learning", arXiv:2305.15706, 2023.

Key idea: a client's classifier reveals its data distribution, so clients with similar classifiers
should share more of their feature extractors. After a FedAvg warm-up, the server keeps each
client's last model; the similarity of clients ``i, j`` is the mean over classes of the cosine
similarity of their classifier rows, clipped at 0 (1 on the diagonal, taken as 0.9999). Client
``i`` starts each round from its own classifier and a feature extractor mixed from every client's
last extractor with weights ``-log(1 - s_ij)``, normalised (large for near-identical classifiers,
zero for unrelated ones); a client with no similar peer keeps its own model. Only the sampled
clients' similarities are refreshed, after their training. The personalised model is the client's
trained model; the global model is the plain FedAvg mean.
Defaults: ``warmup_rounds = 2`` (FL-bench warms up for half of the rounds; half of the 5-round runs
here), the diagonal constant 0.9999 as in the paper's code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from algorithms.aggregation import StateDict, weighted_mean
from algorithms.api import PERSONAL_STATE, ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="pfedsim",
        full_name="Similarity-Aware Model Aggregation (pFedSim)",
        key_idea="After a FedAvg warm-up, each client's feature extractor is mixed from the clients whose "
        "classifiers are most similar (cosine), with weights -log(1 - similarity); classifiers stay personal.",
        category="personalised",
        choose_when="Groups of sites share similar label mixes (e.g. two kinds of hospital) and each should "
        "learn mostly from its own group; the server keeps one model per client.",
        paper="Tan et al., 2023, arXiv:2305.15706",
    ),
)

SELF_SIMILARITY = 0.9999


def classifier_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over classes of the cosine similarity of two classifiers' weight rows, clipped at 0."""
    return max(0.0, float(F.cosine_similarity(a.double(), b.double(), dim=-1).mean()))


def mixing_weights(similarity: Sequence[float], self_index: int) -> list[float] | None:
    """pFedSim's weights ``-log(1 - s)`` normalised; ``None`` when no peer is similar (keep own model)."""
    s = list(similarity)
    if sum(v for i, v in enumerate(s) if i != self_index) <= 0:
        return None
    s[self_index] = SELF_SIMILARITY
    w = [-math.log(1 - min(v, SELF_SIMILARITY)) for v in s]
    return [v / sum(w) for v in w]


@register("pfedsim")
class PFedSim(FLAlgorithm):
    """Per-client extractor mixtures weighted by classifier similarity after a FedAvg warm-up.

    Args:
        warmup_rounds: FedAvg rounds before personalisation starts.
    """

    primary_model = "personal"

    def __init__(self, warmup_rounds: int = 2) -> None:
        self.warmup_rounds = warmup_rounds

    def validate(self) -> None:
        if self.warmup_rounds < 0:
            raise ValueError(f"pFedSim warmup_rounds must be >= 0, got {self.warmup_rounds}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.models_: dict[int, StateDict] = {}
        self.similarity_ = torch.eye(max(server.num_clients, 1), dtype=torch.float64)

    def _classifier(self, server: ServerContext) -> str:
        weights = [k for k in server.info.head_keys if k.endswith("weight")]
        return weights[0] if weights else server.info.head_keys[0]

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        if server.round <= self.warmup_rounds or client_id not in self.models_:
            return global_state
        own = self.models_[client_id]
        ids = sorted(self.models_)
        w = mixing_weights([float(self.similarity_[client_id, j]) for j in ids], ids.index(client_id))
        if w is None:
            return own
        mixed = weighted_mean([self.models_[j] for j in ids], w)
        head = set(server.info.head_keys)
        return {k: own[k] if k in head else v for k, v in mixed.items()}

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        if server.round < self.warmup_rounds:
            return combined
        if server.round == self.warmup_rounds or not self.models_:  # end of warm-up: everyone starts from it
            self.models_ = {c: dict(combined) for c in range(server.num_clients)}
            if server.round == self.warmup_rounds:
                return combined
        for u in updates:
            self.models_[u.client_id] = {**self.models_.get(u.client_id, combined), **u.weights}
        key = self._classifier(server)
        ids = [u.client_id for u in updates]
        for a, i in enumerate(ids):
            for j in ids[a + 1:]:
                s = classifier_similarity(self.models_[i][key], self.models_[j][key])
                self.similarity_[i, j] = self.similarity_[j, i] = s
        return combined

    # ----------------------------------------------------------------- client
    def end_client(self, ctx: ClientContext, model) -> Message:
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return Message()
