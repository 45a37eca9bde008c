"""Adversarial collaborative learning (ADCOL) [Li et al., 2023].

Paper: Q. Li, B. He, D. Song, "Adversarial Collaborative Learning on Non-IID Features", ICML 2023 (PMLR v202; no arXiv version).

Key idea: under feature skew, averaging models is not what helps; learning a *common representation
space* is. Each client keeps its own model and trains it with cross-entropy plus
``mu * KL(uniform || D(f(x)))``, where ``D`` is a discriminator that tries to tell from a
representation which client it came from: a client's representations are pushed to where the
discriminator cannot say, i.e. to a distribution shared by all clients. The server trains ``D``
(cross-entropy on client ids) on representations the clients upload after local training and sends
it back every round. No model weights are averaged.

Off-client sharing (privacy): this method uploads every training example's representation
(the classifier's input features) each round, not only weights or statistics.

Defaults follow FL-bench: ``mu = 0.5``, discriminator learning rate 0.01, 3 discriminator epochs;
the discriminator is a two-layer MLP (hidden width 128) over the representation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.aggregation import StateDict
from algorithms.api import (
    Batch,
    ClientContext,
    ClientUpdate,
    FLAlgorithm,
    Message,
    ModelInfo,
    Phase,
    ServerContext,
)
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="adcol",
        full_name="Adversarial Collaborative Learning (ADCOL)",
        key_idea="Each client keeps its own model and trains its representation so that a server-side "
        "discriminator cannot tell which client it came from. Shares beyond weights: every training "
        "example's representation (features) is uploaded to the server each round.",
        category="feature_skew",
        also_fits=("personalised", "domain_generalisation"),
        choose_when="Sites differ in acquisition (scanner, staining) and each wants its own model in a "
        "shared representation space, AND the consortium accepts that per-image feature vectors leave "
        "the sites (uploads features, not only weights).",
        paper="Li et al., ICML 2023 (no arXiv version; PMLR v202)",
        shares=("features",),
    ),
)

DISC = "discriminator"
FEATURES = "features"


def make_discriminator(in_dim: int, num_clients: int, hidden: int = 128) -> nn.Module:
    """The discriminator: representation -> logits over client ids."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_clients))


def uniform_kl(disc_logits: Tensor) -> Tensor:
    """KL(uniform || softmax(disc_logits)), averaged over the batch."""
    n = disc_logits.shape[1]
    return F.kl_div(F.log_softmax(disc_logits, dim=1), torch.full_like(disc_logits, 1.0 / n), reduction="batchmean")


@register("adcol")
class ADCOL(FLAlgorithm):
    """Local models trained against a server discriminator of client identity.

    Args:
        mu: weight of the indistinguishability term.
        dis_lr: learning rate of the discriminator (server SGD).
        dis_epochs: discriminator epochs per round over the uploaded representations.
        seed: seed of the discriminator's initialisation and batch order.
    """

    primary_model = "personal"

    def __init__(self, mu: float = 0.5, dis_lr: float = 0.01, dis_epochs: int = 3, seed: int = 0) -> None:
        self.mu = mu
        self.dis_lr = dis_lr
        self.dis_epochs = dis_epochs
        self.seed = seed

    def validate(self) -> None:
        if self.mu < 0 or self.dis_lr <= 0 or self.dis_epochs < 1:
            raise ValueError(f"ADCOL needs mu >= 0, dis_lr > 0 and dis_epochs >= 1; got {self.mu}, {self.dis_lr}, "
                             f"{self.dis_epochs}")

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(info.state_keys)  # every client keeps its whole model

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        in_dim = global_state[server.info.head_keys[0]].shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.disc_ = make_discriminator(in_dim, max(server.num_clients, 2))

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(arrays={DISC: {k: v.detach().clone() for k, v in self.disc_.state_dict().items()}})

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        uploads = [u for u in updates if FEATURES in u.message.arrays]
        n_out = self.disc_[-1].out_features
        uploads = [u for u in uploads if u.client_id < n_out]
        if uploads:
            feats = torch.cat([u.message.arrays[FEATURES]["feats"].float().cpu() for u in uploads])
            ids = torch.cat([torch.full((len(u.message.arrays[FEATURES]["feats"]),), u.client_id) for u in uploads])
            self.train_discriminator(feats, ids)
        return super().aggregate(global_state, updates, server)

    def train_discriminator(self, feats: Tensor, ids: Tensor, batch_size: int = 64) -> None:
        opt = torch.optim.SGD(self.disc_.parameters(), lr=self.dis_lr, momentum=0.9)
        g = torch.Generator().manual_seed(self.seed + len(ids))
        with torch.enable_grad():
            for _ in range(self.dis_epochs):
                order = torch.randperm(len(ids), generator=g)
                for i in range(0, len(ids), batch_size):
                    idx = order[i:i + batch_size]
                    loss = F.cross_entropy(self.disc_(feats[idx]), ids[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

    # ----------------------------------------------------------------- client
    def begin_client(self, ctx: ClientContext) -> None:
        arrays = ctx.message.arrays.get(DISC)
        if arrays:
            w0, w1 = arrays["0.weight"], arrays["2.weight"]
            disc = make_discriminator(w0.shape[1], w1.shape[0], w0.shape[0]).to(w0.device)
            disc.load_state_dict(arrays)
            disc.requires_grad_(False)
            ctx.scratch["disc"] = disc
        ctx.scratch["feats"] = []

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [*super().local_phases(ctx), Phase(epochs=1, kind="observe")]

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        disc = ctx.scratch.get("disc")
        if disc is None or self.mu == 0:
            return batch.loss
        return batch.loss + self.mu * uniform_kl(disc(batch.feats))

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        ctx.scratch["feats"].append(batch.feats.detach().float())

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        feats = ctx.scratch["feats"]
        return Message(arrays={FEATURES: {"feats": torch.cat(feats)}}) if feats else Message()
