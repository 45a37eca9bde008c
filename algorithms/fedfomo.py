"""Federated First Order Model Optimization (FedFomo) [Zhang et al., 2021].

Paper: M. Zhang, K. Sapra, S. Fidler, S. Yeung, J. M. Alvarez, "Personalized Federated Learning with
First Order Model Optimization", ICLR 2021, arXiv:2012.08565.

Key idea: there is no global model. Each client ``i`` downloads ``M`` other clients' latest models
and weighs each by how much it improves on its own previous model on a local validation split,
per unit of distance (Eq. 3)::

    w_ij = max(0, L_i(theta_i) - L_i(theta_j)) / ||theta_j - theta_i||,   normalised to sum 1
    theta_i <- theta_i + sum_j w_ij (theta_j - theta_i)

(unchanged if no peer helps), then trains locally. The server keeps every client's latest model
and an affinity matrix ``P`` (``P_ij += w_ij``); it sends client ``i`` the ``M`` peers with the highest
affinity, replacing each by a random one with probability ``epsilon`` (exploration), seeded by round.
The validation split is every ``k``-th training example by position (``k = round(1 / val_fraction)``),
held out of the local training loss. The personalised model is the client's trained model; the
"global" model reported is the plain FedAvg mean, which the method itself never uses.
Defaults: ``M = 5``, ``epsilon = 0.3``, ``val_fraction = 0.2`` (FL-bench's; the paper uses
M = 5 and an epsilon that starts at 0.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
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
)
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedfomo",
        full_name="First Order Model Optimization (FedFomo)",
        key_idea="Each client combines the peer models that lower its own validation loss, weighted by "
        "loss improvement per unit distance; the server only relays models chosen by affinity.",
        category="personalised",
        also_fits=("feature_skew",),
        choose_when="Sites fall into unknown groups and each should borrow only from sites that help it; "
        "downloads M models per round, so for few sites with enough data for a validation split.",
        paper="Zhang et al., 2021, arXiv:2012.08565",
    ),
)

PEER = "peer_"
FOMO = "fomo"


def fomo_weights(own_loss: float, peer_losses: Sequence[float], distances: Sequence[float]) -> list[float]:
    """FedFomo's normalised weights; all zero when no peer beats the own model."""
    raw = [max(0.0, own_loss - lo) / max(d, 1e-12) for lo, d in zip(peer_losses, distances)]
    total = sum(raw)
    return [r / total for r in raw] if total > 0 else [0.0] * len(raw)


@register("fedfomo")
class FedFomo(FLAlgorithm):
    """Clients combine helpful peers' models by first-order weights; the server relays by affinity.

    Args:
        m: peer models a client downloads per round.
        epsilon: probability of replacing a chosen peer by a random one.
        val_fraction: share of the training split held out to score the peers.
    """

    primary_model = "personal"

    def __init__(self, m: int = 5, epsilon: float = 0.3, val_fraction: float = 0.2) -> None:
        self.m = m
        self.epsilon = epsilon
        self.val_fraction = val_fraction

    def validate(self) -> None:
        if self.m < 1:
            raise ValueError(f"FedFomo m (peer models per round) must be >= 1, got {self.m}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"FedFomo epsilon must be in [0, 1], got {self.epsilon}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"FedFomo val_fraction must be in (0, 1), e.g. 0.2, got {self.val_fraction}")

    def _every(self) -> int:
        return max(2, round(1 / self.val_fraction))

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.models_: dict[int, StateDict] = {}
        self.affinity_ = torch.zeros(max(server.num_clients, 1), max(server.num_clients, 1), dtype=torch.float64)

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        return self.models_.get(client_id, global_state)

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        if client_id not in self.models_:
            return Message()
        peers = [j for j in sorted(self.models_) if j != client_id]
        order = sorted(peers, key=lambda j: (-float(self.affinity_[client_id, j]), j))
        chosen, rest = order[:self.m], order[self.m:]
        g = torch.Generator().manual_seed(server.round * 100_003 + client_id)
        for pos in range(len(chosen)):
            if rest and float(torch.rand((), generator=g)) < self.epsilon:
                chosen[pos] = rest.pop(int(torch.randint(len(rest), (), generator=g)))
        return Message(arrays={f"{PEER}{j}": self.models_[j] for j in sorted(chosen)})

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        for u in updates:
            self.models_[u.client_id] = dict(u.weights)
            fomo = u.message.arrays.get(FOMO)
            if fomo:
                for j, w in zip(fomo["ids"].tolist(), fomo["w"].tolist()):
                    self.affinity_[u.client_id, int(j)] += w
        return combined

    # ----------------------------------------------------------------- client
    def _peers(self, ctx: ClientContext) -> list[int]:
        return sorted(int(g[len(PEER):]) for g in ctx.message.arrays if g.startswith(PEER))

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        first = [Phase(epochs=1, kind="observe")] if self._peers(ctx) else []
        return [*first, *super().local_phases(ctx)]

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        val = batch.index % self._every() == 0
        if not bool(val.any()):
            return
        x, y = batch.x[val], batch.y[val]
        sums = ctx.scratch.setdefault("val_loss", {"own": 0.0, "n": 0})
        sums["own"] += float(F.cross_entropy(batch.logits[val], y, reduction="sum"))
        sums["n"] += int(val.sum())
        models = ctx.scratch.setdefault("peer_models", {})
        for j in self._peers(ctx):
            if j not in models:
                models[j] = ctx.make_model(ctx.message.arrays[f"{PEER}{j}"])
            sums[j] = sums.get(j, 0.0) + float(F.cross_entropy(models[j](x), y, reduction="sum"))

    @torch.no_grad()
    def after_phase(self, ctx: ClientContext, model: nn.Module) -> None:
        if ctx.phase is None or ctx.phase.kind != "observe" or "val_loss" in ctx.scratch and "w" in ctx.scratch:
            return
        peers, sums = self._peers(ctx), ctx.scratch.get("val_loss", {"n": 0})
        if not peers or sums["n"] == 0:
            return
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        keys = [k for k in ctx.info.param_keys if k in own]
        dist = [sum(float((ctx.message.arrays[f"{PEER}{j}"][k] - own[k]).pow(2).sum()) for k in keys) ** 0.5
                for j in peers]
        w = fomo_weights(sums["own"] / sums["n"], [sums[j] / sums["n"] for j in peers], dist)
        ctx.scratch["w"] = w
        new = dict(own)
        for j, wj in zip(peers, w):
            if wj > 0:
                peer = ctx.message.arrays[f"{PEER}{j}"]
                for k, v in own.items():
                    if v.is_floating_point():
                        new[k] = new[k] + wj * (peer[k] - v)
        model.load_state_dict(new)

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        train = batch.index % self._every() != 0
        if bool(train.all()):
            return batch.loss
        if not bool(train.any()):
            return batch.logits.sum() * 0.0
        return F.cross_entropy(batch.logits[train], batch.y[train])

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        peers = self._peers(ctx)
        if not peers or "w" not in ctx.scratch:
            return Message()
        return Message(arrays={FOMO: {"ids": torch.tensor(peers), "w": torch.tensor(ctx.scratch["w"])}})
