"""Layer-wise personalised aggregation with a server hypernetwork (pFedLA) [Ma et al., 2022].

Paper: X. Ma, J. Zhang, S. Guo, W. Xu, "Layer-wised Model Aggregation for Personalized Federated
Learning", CVPR 2022, arXiv:2205.03993.

Key idea: the server keeps every client's latest model and, for each client ``i``, builds its
starting model layer by layer as a weighted mix of all clients' layers,
``theta_i^l = sum_j alpha_i^{l,j} theta_j^l``, where the weights ``alpha_i`` (one distribution over
clients per layer) are produced by a hypernetwork from a learnt embedding of client ``i``. After
local training the client's weight change ``d_i`` is the descent direction: the server updates the
hypernetwork and the embedding along ``(d theta_i / d phi)^T (-d_i)`` and stores the trained model
as client ``i``'s latest. Layers that help a client get weight from the clients whose layers
resemble what it needs, so similar sites share more, per layer.

Here a layer is a module prefix of the state dict (a convolution, a BatchNorm, the head); the
hypernetwork's output layers start at zero, so every client first receives the plain mean of all
clients' models (FedAvg). Integer buffers (BatchNorm counters) take the global value. The reported
"global" model is the sample-weighted mean of the round's uploads; the personalised model a client
evaluates is its trained model. Defaults follow FL-bench's implementation: embedding and hidden
size 100, hypernetwork SGD learning rate 5e-3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from algorithms.aggregation import StateDict, clone_state
from algorithms.api import PERSONAL_STATE, ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="pfedla",
        full_name="Layer-wise Personalised Aggregation (pFedLA)",
        key_idea="A server hypernetwork gives each client, per layer, weights over all clients' models; "
        "the client starts from that layer-wise mix and the hypernetwork learns from its weight change.",
        category="personalised",
        also_fits=("label_skew", "feature_skew"),
        choose_when="Sites differ and some resemble each other in some layers only (same scanner, "
        "different labels); the server keeps every client's latest model.",
        paper="Ma et al., 2022, arXiv:2205.03993",
    ),
)


def layers_of(keys: Sequence[str]) -> dict[str, list[str]]:
    """State-dict keys grouped by module prefix, in order ("body.1.weight" -> "body.1")."""
    out: dict[str, list[str]] = {}
    for k in keys:
        out.setdefault(k.rsplit(".", 1)[0], []).append(k)
    return out


class LayerHyperNetwork(nn.Module):
    """Client embedding -> MLP -> per layer, a softmax over clients."""

    def __init__(self, num_clients: int, layers: Sequence[str], embed_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(num_clients, embed_dim)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim),
                                 nn.ReLU())
        self.layers = list(layers)
        self.outputs = nn.ModuleList(nn.Linear(hidden_dim, num_clients) for _ in self.layers)
        for out in self.outputs:  # uniform weights at first: every client starts from the mean model
            nn.init.zeros_(out.weight)
            nn.init.zeros_(out.bias)

    def forward(self, client_id: int) -> dict[str, Tensor]:
        h = self.mlp(self.embeddings(torch.tensor([client_id]))).squeeze(0)
        return {layer: torch.softmax(out(h), dim=0) for layer, out in zip(self.layers, self.outputs)}


@register("pfedla")
class PFedLA(FLAlgorithm):
    """Per-client, per-layer learnt mixing of all clients' latest models.

    Args:
        embed_dim: client embedding size.
        hidden_dim: hypernetwork width.
        hn_lr: learning rate of the hypernetwork and embeddings (server SGD).
        seed: seed of the hypernetwork's initialisation.
    """

    primary_model = "personal"

    def __init__(self, embed_dim: int = 100, hidden_dim: int = 100, hn_lr: float = 5e-3, seed: int = 0) -> None:
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.hn_lr = hn_lr
        self.seed = seed

    def validate(self) -> None:
        if self.embed_dim < 1 or self.hidden_dim < 1 or self.hn_lr <= 0:
            raise ValueError(f"pFedLA needs embed_dim >= 1, hidden_dim >= 1 and hn_lr > 0; got {self.embed_dim}, "
                             f"{self.hidden_dim}, {self.hn_lr}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.client_models_: list[StateDict] = [clone_state(global_state) for _ in range(server.num_clients)]
        floats = [k for k in global_state if global_state[k].is_floating_point()]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.hn_ = LayerHyperNetwork(max(server.num_clients, 1), list(layers_of(floats)), self.embed_dim,
                                         self.hidden_dim)

    def mixed(self, client_id: int, global_state: StateDict) -> dict[str, Tensor]:
        """Client ``client_id``'s layer-wise mix of all clients' models (with the hypernetwork's graph)."""
        alpha = self.hn_(client_id)
        out: dict[str, Tensor] = {}
        for layer, keys in layers_of([k for k in global_state if global_state[k].is_floating_point()]).items():
            for k in keys:
                stacked = torch.stack([m[k].detach().float().cpu() for m in self.client_models_])
                out[k] = torch.tensordot(alpha[layer], stacked, dims=1)
        return out

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        if client_id >= len(self.client_models_):
            return global_state
        with torch.no_grad():
            mix = self.mixed(client_id, global_state)
        return {**global_state, **{k: v.to(global_state[k].device, global_state[k].dtype) for k, v in mix.items()}}

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        out = super().aggregate(global_state, updates, server)
        known = sorted((u for u in updates if u.client_id < len(self.client_models_)), key=lambda u: u.client_id)
        if not known:
            return out
        params = dict(self.hn_.named_parameters())
        total = {k: torch.zeros_like(p) for k, p in params.items()}
        with torch.enable_grad():
            for u in known:
                mix = self.mixed(u.client_id, global_state)
                change = [mix[k].detach() - u.weights[k].detach().float().cpu() for k in mix]
                grads = torch.autograd.grad(list(mix.values()), list(params.values()), grad_outputs=change,
                                            allow_unused=True)
                for k, g in zip(params, grads):
                    if g is not None:
                        total[k] += g / len(known)
        with torch.no_grad():
            for k, p in params.items():
                p.sub_(self.hn_lr * total[k])
        for u in known:
            self.client_models_[u.client_id] = {**self.client_models_[u.client_id], **clone_state(u.weights)}
        return out

    def layer_weights(self, client_id: int) -> dict[str, Tensor]:
        """The hypernetwork's current per-layer weights over clients for ``client_id`` (for inspection)."""
        with torch.no_grad():
            return self.hn_(client_id)

    # ----------------------------------------------------------------- client
    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return Message()
