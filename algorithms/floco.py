"""Federated learning over connected modes (Floco) [Grinwald et al., 2024].

Paper: D. Grinwald, P. Wiesner, S. Nakajima, "Federated Learning over Connected Modes", NeurIPS 2024,
arXiv:2403.03333.

Key idea: train a *solution simplex* instead of a point: the classifier holds ``M`` endpoint weight
matrices and uses ``W(alpha) = sum_m alpha_m W_m`` for a point ``alpha`` of the simplex, sampled
anew at every training forward, so the whole simplex becomes a linearly connected low-loss region.
At first every client samples from the whole simplex. At round ``tau`` the server projects the
clients' classifier updates onto the simplex (PCA to ``M`` components, then the Euclidean simplex
projection whose radius spreads the clients most evenly, by the Riesz s-energy), which gives each
client a subregion: an L1 ball of radius ``rho`` around its point ``beta_i``. From then on a client
samples only inside its subregion, so clients with similar gradients share similar parts of the
simplex (personalisation) while every round still averages all endpoints (FedAvg). A client's
personalised model is the simplex at ``beta_i``; the global model is the simplex centre.

Here the head is replaced in place by :class:`SimplexHead`; its subregion travels as two buffers
(``center``, ``radius``) that the server sets per client in ``client_weights``. The projection uses
the updates of the clients taking part in round ``tau``. Defaults follow the authors' FL-bench code:
``endpoints = 10``, ``tau = 10``, ``rho = 0.1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import Tensor, nn

from algorithms.aggregation import StateDict
from algorithms.api import PERSONAL_STATE, ClientContext, ClientUpdate, FLAlgorithm, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="floco",
        full_name="Federated Learning over Connected Modes (Floco)",
        key_idea="The classifier is a simplex of endpoint weights trained at random points; after a "
        "warm-up each client is given a subregion of the simplex from its projected update, so similar "
        "clients share similar regions while all endpoints are averaged.",
        category="personalised",
        also_fits=("label_skew",),
        choose_when="A few sites (cross-silo) with label skew want both a good global model and "
        "personal ones at FedAvg's communication cost; needs tau rounds before personalising.",
        paper="Grinwald et al., 2024, arXiv:2403.03333",
    ),
)


class SimplexHead(nn.Module):
    """A linear classifier whose weight is a point of a simplex of ``endpoints`` weight matrices."""

    def __init__(self, in_features: int, out_features: int, endpoints: int, seed: int = 0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        g = torch.Generator().manual_seed(seed)
        std = (2.0 / (in_features + out_features)) ** 0.5  # Xavier normal, one draw per endpoint
        self.endpoints = nn.Parameter(torch.randn(endpoints, out_features, in_features, generator=g) * std)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("center", torch.full((endpoints,), 1.0 / endpoints))
        self.register_buffer("radius", torch.tensor(-1.0))  # < 0: sample the whole simplex

    def alphas(self) -> Tensor:
        """The simplex point of this forward: the centre in evaluation, a random point in training."""
        m = self.center.numel()
        if not self.training:
            return self.center
        if float(self.radius) < 0:  # uniform on the simplex: normalised exponentials
            e = -torch.rand(m, device=self.center.device).clamp_min(1e-12).log()
            return e / e.sum()
        u = torch.rand(m, device=self.center.device) * 2 - 1  # a point of the L1 ball around the centre
        u = u.sign() * u.abs() / u.abs().sum().clamp_min(1e-12)
        return self.center + torch.rand((), device=self.center.device) * self.radius * u

    def forward(self, x: Tensor) -> Tensor:
        weight = torch.einsum("m,mcd->cd", self.alphas().to(self.endpoints.dtype), self.endpoints)
        return F.linear(x, weight, self.bias)


def project_onto_simplex(v: np.ndarray, z: float = 1.0) -> np.ndarray:
    """Euclidean projection of each row of ``v`` onto the simplex ``{x >= 0, sum x = z}``."""
    u = np.sort(v, axis=1)[:, ::-1]
    css = np.cumsum(u, axis=1) - z
    ind = np.arange(1, v.shape[1] + 1)
    rho = np.count_nonzero(u - css / ind > 0, axis=1)
    theta = css[np.arange(len(v)), rho - 1] / rho
    return np.maximum(v - theta[:, None], 0.0)


def riesz_log_energy(points: np.ndarray) -> float:
    """Log of the mean Riesz s-energy (s = 2) of the points: small when they are spread out."""
    diff = points[:, None] - points[None, :]
    dist = np.sqrt((diff ** 2).sum(axis=2))[np.triu_indices(len(points), 1)]
    return float(np.log(np.mean(1.0 / np.maximum(dist, 1e-4) ** 2)))


def client_points(updates: np.ndarray, endpoints: int) -> np.ndarray:
    """Each client's simplex point from its flattened classifier update (PCA, then the spreading projection)."""
    k = min(endpoints, len(updates), updates.shape[1])
    kappas = np.zeros((len(updates), endpoints))
    kappas[:, :k] = PCA(n_components=k).fit_transform(updates) if len(updates) > 1 else 0.0
    best, best_energy = np.full_like(kappas, 1.0 / endpoints), np.inf
    for z in np.linspace(1e-4, 1, 200):
        betas = project_onto_simplex(kappas, z)
        betas = betas / np.maximum(betas.sum(axis=1, keepdims=True), 1e-12)
        energy = riesz_log_energy(betas) if len(betas) > 1 else 0.0
        if np.isfinite(energy) and energy < best_energy:
            best, best_energy = betas, energy
    return best


@register("floco")
class Floco(FLAlgorithm):
    """FedAvg on a simplex classifier; clients train in subregions from round ``tau`` on.

    Args:
        endpoints: number of simplex endpoints M.
        tau: round after which the clients get their subregions.
        rho: L1 radius of a client's subregion.
        seed: seed of the endpoints' initialisation.
    """

    primary_model = "personal"

    def __init__(self, endpoints: int = 10, tau: int = 10, rho: float = 0.1, seed: int = 0) -> None:
        self.endpoints = endpoints
        self.tau = tau
        self.rho = rho
        self.seed = seed

    def validate(self) -> None:
        if self.endpoints < 2 or self.tau < 1 or not 0 <= self.rho <= 1:
            raise ValueError(f"Floco needs endpoints >= 2, tau >= 1 and rho in [0, 1]; got endpoints="
                             f"{self.endpoints}, tau={self.tau}, rho={self.rho}")

    def build_model(self, model: nn.Module) -> nn.Module:
        head = model.get_classifier()
        for name, mod in model.named_children():
            if mod is head:
                setattr(model, name, SimplexHead(head.in_features, head.out_features, self.endpoints, self.seed))
                return model
        raise ValueError("Floco needs a model whose classifier is a direct child module (timm models, tiny_cnn)")

    @staticmethod
    def _key(info_keys: Sequence[str], leaf: str) -> str | None:
        return next((k for k in info_keys if k.endswith("." + leaf)), None)

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.points_: dict[str, Tensor] = {}  # client id (as text) -> its subregion centre

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        center, radius = self._key(server.info.head_keys, "center"), self._key(server.info.head_keys, "radius")
        point = self.points_.get(str(client_id))
        if point is None or center is None or radius is None:
            return global_state
        return {**global_state, center: point.to(global_state[center]),
                radius: torch.tensor(float(self.rho)).to(global_state[radius])}

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        out = super().aggregate(global_state, updates, server)
        center, radius = self._key(server.info.head_keys, "center"), self._key(server.info.head_keys, "radius")
        ends = self._key(server.info.head_keys, "endpoints")
        if center is None or radius is None or ends is None or ends not in out:
            return out
        if server.round == self.tau and updates:
            ordered = sorted(updates, key=lambda u: u.client_id)
            deltas = np.stack([(u.weights[ends] - global_state[ends]).double().flatten().cpu().numpy()
                               for u in ordered])
            points = client_points(deltas, global_state[center].numel())
            self.points_ = {str(u.client_id): torch.tensor(p, dtype=torch.float32) for u, p in zip(ordered, points)}
        # the global model is the simplex centre, sampled over the whole simplex
        out[center] = torch.full_like(global_state[center], 1.0 / global_state[center].numel())
        out[radius] = torch.full_like(global_state[radius], -1.0)
        return out

    # ----------------------------------------------------------------- client and evaluation
    def begin_client(self, ctx: ClientContext) -> None:
        center = self._key(ctx.info.head_keys, "center")
        radius = self._key(ctx.info.head_keys, "radius")
        if center and radius and float(ctx.global_state[radius]) >= 0:  # the client has its subregion
            ctx.state[PERSONAL_STATE] = {center: ctx.global_state[center].clone(),
                                         radius: ctx.global_state[radius].clone()}

    def personalised_state(self, global_state: StateDict, client_state: dict[str, Any],
                           local_state: StateDict) -> StateDict:
        """The newest global simplex evaluated at the client's own point (kept as its personal state)."""
        return {**global_state, **local_state, **client_state.get(PERSONAL_STATE, {})}
