"""Personalised FL with hypernetworks (pFedHN) [Shamsian et al., 2021].

Paper: A. Shamsian, A. Navon, E. Fetaya, G. Chechik, "Personalized Federated Learning using
Hypernetworks", ICML 2021, arXiv:2103.04628.

Key idea: the server trains a hypernetwork ``h(v_i; phi)`` that maps a learnt embedding ``v_i`` of
each client to that client's model weights ``theta_i``. A client starts from ``theta_i``, trains
it locally and returns ``theta_i'``; the server then descends along
``(d theta_i / d (phi, v_i))^T (theta_i - theta_i')``, the chain rule with the client's weight change
as the loss gradient, so the hypernetwork learns to produce weights that already suit each client
while sharing its parameters across all of them.

Substitute (documented): the hypernetwork generates only the classifier head; the body is shared
and averaged by FedAvg (the paper's pFedHN-PC variant also keeps a shared feature extractor with
personal heads). Generating a full ResNet from an MLP would make the server's output layer
``hidden x |theta|``, which does not fit a small medical federation's server; the head is what
differs between sites under label skew. The reported "global" head is the sample-weighted mean of
the clients' trained heads; the personalised model a client evaluates is its generated head after
its local training. Defaults follow the paper and FL-bench: hidden width 100 with 3 hidden layers,
embedding size ``1 + num_clients // 4``, server SGD with lr 1e-2, momentum 0.9, weight decay 1e-3,
gradient-norm clip 50.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from algorithms.aggregation import StateDict
from algorithms.api import PERSONAL_STATE, ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="pfedhn",
        full_name="Personalised FL with Hypernetworks (pFedHN)",
        key_idea="A server-side hypernetwork maps a learnt embedding of each client to that client's "
        "classifier head (here; the body is averaged), trained by the chain rule from the clients' "
        "weight changes.",
        category="personalised",
        also_fits=("label_skew",),
        choose_when="Sites have different label distributions and want personal models, with compute "
        "to spare on the server; the hypernetwork also gives a new site a head from its embedding.",
        paper="Shamsian et al., 2021, arXiv:2103.04628",
    ),
)


class HyperNetwork(nn.Module):
    """Client embeddings -> MLP -> one output layer per generated tensor."""

    def __init__(self, num_clients: int, embed_dim: int, hidden_dim: int, n_hidden: int,
                 shapes: dict[str, torch.Size]) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(num_clients, embed_dim)
        layers: list[nn.Module] = [nn.Linear(embed_dim, hidden_dim)]
        for _ in range(n_hidden):
            layers += [nn.ReLU(), nn.Linear(hidden_dim, hidden_dim)]
        self.mlp = nn.Sequential(*layers)
        self.shapes = dict(shapes)
        self.outputs = nn.ModuleList(nn.Linear(hidden_dim, math.prod(s)) for s in self.shapes.values())

    def forward(self, client_id: int) -> dict[str, Tensor]:
        h = self.mlp(self.embeddings(torch.tensor([client_id]))).squeeze(0)
        return {k: out(h).view(shape) for (k, shape), out in zip(self.shapes.items(), self.outputs)}


@register("pfedhn")
class PFedHN(FLAlgorithm):
    """A server hypernetwork generates each client's head; the body is FedAvg.

    Args:
        hidden_dim: width of the hypernetwork's hidden layers.
        n_hidden: number of hidden layers after the first.
        embed_dim: client embedding size (``0``: ``1 + num_clients // 4``, the paper's rule).
        hn_lr: learning rate of the hypernetwork and the embeddings (server SGD).
        momentum: server SGD momentum.
        weight_decay: server SGD weight decay.
        norm_clip: clip of the hypernetwork gradient's norm.
        seed: seed of the hypernetwork's initialisation.
    """

    primary_model = "personal"

    def __init__(self, hidden_dim: int = 100, n_hidden: int = 3, embed_dim: int = 0, hn_lr: float = 1e-2,
                 momentum: float = 0.9, weight_decay: float = 1e-3, norm_clip: float = 50.0, seed: int = 0) -> None:
        self.hidden_dim = hidden_dim
        self.n_hidden = n_hidden
        self.embed_dim = embed_dim
        self.hn_lr = hn_lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.norm_clip = norm_clip
        self.seed = seed

    def validate(self) -> None:
        if self.hidden_dim < 1 or self.n_hidden < 0 or self.embed_dim < 0:
            raise ValueError("pFedHN needs hidden_dim >= 1, n_hidden >= 0, embed_dim >= 0 (0: automatic); got "
                             f"{self.hidden_dim}, {self.n_hidden}, {self.embed_dim}")
        if self.hn_lr <= 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0 or self.norm_clip <= 0:
            raise ValueError("pFedHN needs hn_lr > 0, momentum in [0, 1), weight_decay >= 0, norm_clip > 0; got "
                             f"{self.hn_lr}, {self.momentum}, {self.weight_decay}, {self.norm_clip}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        n = max(server.num_clients, 1)
        shapes = {k: global_state[k].shape for k in server.info.head_keys if k in server.info.param_keys}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.hn_ = HyperNetwork(n, self.embed_dim or 1 + n // 4, self.hidden_dim, self.n_hidden, shapes)
        self.momentum_buf_: dict[str, Tensor] = {k: torch.zeros_like(p) for k, p in self.hn_.named_parameters()}

    def _grow(self, client_id: int) -> None:
        """Give a client the server never counted an embedding (drawn like the others)."""
        emb = self.hn_.embeddings
        if client_id < emb.num_embeddings:
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + client_id + 1)
            extra = torch.randn(client_id + 1 - emb.num_embeddings, emb.embedding_dim)
        grown = nn.Embedding(client_id + 1, emb.embedding_dim)
        grown.weight.data = torch.cat([emb.weight.data, extra])
        self.hn_.embeddings = grown
        buf = self.momentum_buf_["embeddings.weight"]
        self.momentum_buf_["embeddings.weight"] = torch.cat([buf, torch.zeros_like(extra)])

    def generated(self, client_id: int) -> dict[str, Tensor]:
        """The head the hypernetwork gives ``client_id`` now (with its graph)."""
        self._grow(client_id)
        return self.hn_(client_id)

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        with torch.no_grad():
            head = self.generated(client_id)
        return {**global_state, **{k: v.to(global_state[k].device, global_state[k].dtype) for k, v in head.items()}}

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        out = super().aggregate(global_state, updates, server)  # body: FedAvg; head: mean of trained heads
        if not updates or not updates[0].weights:
            return out
        ordered = sorted(updates, key=lambda u: u.client_id)
        for u in ordered:
            self._grow(u.client_id)
        params = dict(self.hn_.named_parameters())
        total = {k: torch.zeros_like(p) for k, p in params.items()}
        with torch.enable_grad():
            for u in ordered:
                head = self.hn_(u.client_id)
                change = [head[k].detach() - u.weights[k].detach().float().cpu() for k in head]
                grads = torch.autograd.grad(list(head.values()), list(params.values()), grad_outputs=change,
                                            allow_unused=True)
                for k, g in zip(params, grads):
                    if g is not None:
                        total[k] += g / len(ordered)
        self._step(total)
        return out

    @torch.no_grad()
    def _step(self, grads: dict[str, Tensor]) -> None:
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads.values()))
        scale = min(1.0, self.norm_clip / (float(norm) + 1e-12))
        for k, p in self.hn_.named_parameters():
            g = grads[k] * scale + self.weight_decay * p
            buf = self.momentum_buf_[k] = self.momentum * self.momentum_buf_[k] + g
            p.sub_(self.hn_lr * buf)

    # ----------------------------------------------------------------- client
    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return Message()
