"""Clustered Federated Learning (CFL) [Sattler et al., 2020].

Paper: F. Sattler, K.-R. Müller, W. Samek, "Clustered Federated Learning: Model-Agnostic Distributed
Multitask Optimization Under Privacy Constraints", IEEE TNNLS 2020, arXiv:1910.01991.

Key idea: the server keeps one model per cluster of clients (all clients in one cluster at first)
and runs FedAvg inside each cluster. When a cluster's training has reached a stationary point of
the joint objective, yet some of its clients are still far from a stationary point of their own,
the clients have incongruent distributions: the norm of the cluster's mean update is small
(``< eps1``) while the largest client update is large (``> eps2``). The server then bipartitions the
cluster by the cosine similarity of the clients' weight updates (complete-linkage agglomerative
clustering, as in the authors' code), and each part carries on from a copy of the cluster's model.
Each client starts every round from its cluster's model (``client_weights``).

Defaults follow the authors' reference implementation: ``eps1 = 0.4``, ``eps2 = 1.6``, no split
before round 20 and only clusters of more than two clients split (the paper's bipartition is
defined for any size; set ``min_split_size=2`` to let a pair split). The "global" model reported
is the sample-weighted mean of the cluster models; the personalised model a client evaluates is
its cluster model after its own latest local update (the client keeps it; the server never sends
it at evaluation time).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sklearn.cluster import AgglomerativeClustering
from torch import nn

from algorithms.aggregation import StateDict, clone_state, weighted_mean
from algorithms.api import PERSONAL_STATE, ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="cfl",
        full_name="Clustered Federated Learning (CFL)",
        key_idea="FedAvg within clusters of clients; a cluster whose mean update is small while a "
        "client's update stays large is split in two by the cosine similarity of the clients' updates, "
        "so sites with incongruent data end up with separate models.",
        category="personalised",
        also_fits=("label_skew",),
        choose_when="Groups of sites have conflicting data (different label conventions, different "
        "populations) so that no single model suits all; needs enough rounds to converge before a "
        "split (20 by default) and several sites per group.",
        paper="Sattler et al., 2020, arXiv:1910.01991",
    ),
)


def _flat_update(update: ClientUpdate, start: StateDict, keys: Sequence[str]) -> torch.Tensor:
    return torch.cat([(update.weights[k].double() - start[k].double()).flatten() for k in keys])


def bipartition(updates: torch.Tensor) -> tuple[list[int], list[int]]:
    """Two groups of row indices of ``updates`` by complete linkage on their cosine similarity."""
    unit = updates / updates.norm(dim=1, keepdim=True).clamp_min(1e-12)
    distance = (1.0 - unit @ unit.T).clamp_min(0.0).numpy()
    labels = AgglomerativeClustering(n_clusters=2, metric="precomputed", linkage="complete").fit(distance).labels_
    first = [i for i, lab in enumerate(labels) if lab == labels[0]]
    return first, [i for i in range(len(labels)) if i not in first]


@register("cfl")
class CFL(FLAlgorithm):
    """FedAvg per cluster; clusters bipartition by update similarity at stationary points.

    Args:
        eps1: split only when the norm of the cluster's mean update is below this.
        eps2: ... and the largest client update norm is above this.
        warmup_rounds: no split in rounds up to this one (authors' code: 20).
        min_split_size: only clusters with at least this many updating clients split (authors' code: 3).
    """

    primary_model = "personal"

    def __init__(self, eps1: float = 0.4, eps2: float = 1.6, warmup_rounds: int = 20,
                 min_split_size: int = 3) -> None:
        self.eps1 = eps1
        self.eps2 = eps2
        self.warmup_rounds = warmup_rounds
        self.min_split_size = min_split_size

    def validate(self) -> None:
        if not 0 <= self.eps1 < self.eps2:
            raise ValueError(f"CFL needs 0 <= eps1 < eps2 (mean-update norm below eps1, max client norm above "
                             f"eps2), got eps1={self.eps1}, eps2={self.eps2}")
        if self.warmup_rounds < 0 or self.min_split_size < 2:
            raise ValueError(f"CFL needs warmup_rounds >= 0 and min_split_size >= 2, got {self.warmup_rounds}, "
                             f"{self.min_split_size}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.clusters_: list[list[int]] = [list(range(server.num_clients))]
        self.models_: list[StateDict] = [clone_state(global_state)]

    def cluster_of(self, client_id: int) -> int:
        """Index of the cluster holding ``client_id`` (a client never seen joins the first cluster)."""
        for i, members in enumerate(self.clusters_):
            if client_id in members:
                return i
        self.clusters_[0].append(client_id)
        return 0

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        return self.models_[self.cluster_of(client_id)]

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        if not updates or not updates[0].weights:
            return dict(global_state)
        by_cluster: dict[int, list[ClientUpdate]] = {}
        for u in updates:
            by_cluster.setdefault(self.cluster_of(u.client_id), []).append(u)
        keys = self.shared_params(updates, server)
        for c in sorted(by_cluster):
            group = sorted(by_cluster[c], key=lambda u: u.client_id)
            start = self.models_[c]
            parts = [group]
            if keys and server.round > self.warmup_rounds and len(group) >= self.min_split_size:
                parts = self._split(c, group, start, keys)
            for i, part in zip([c, len(self.models_) - 1][:len(parts)], parts):
                self.models_[i] = {**start, **weighted_mean([u.weights for u in part],
                                                            [self.client_weight(u, server) for u in part])}
        sizes = [sum(server.client_sizes[m] if m < len(server.client_sizes) else 1 for m in members) or 1
                 for members in self.clusters_]
        return {**global_state, **weighted_mean(self.models_, [float(s) for s in sizes])}

    def _split(self, c: int, group: list[ClientUpdate], start: StateDict,
               keys: list[str]) -> list[list[ClientUpdate]]:
        """The cluster's updates in one part, or in two when the split criterion holds (then the
        second part becomes a new cluster, its model a copy of the start, and both parts average
        their own members' updates, as in the authors' code)."""
        dw = torch.stack([_flat_update(u, start, keys) for u in group])
        mean_norm = float(dw.mean(dim=0).norm())
        max_norm = float(dw.norm(dim=1).max())
        if not (mean_norm < self.eps1 and max_norm > self.eps2):
            return [group]
        first, second = bipartition(dw)
        ids = {group[i].client_id for i in first}
        self.clusters_.append([m for m in self.clusters_[c] if m not in ids])
        self.clusters_[c] = [m for m in self.clusters_[c] if m in ids]
        self.models_.append(clone_state(start))
        return [[group[i] for i in first], [group[i] for i in second]]

    # ----------------------------------------------------------------- client
    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return Message()
