"""Personalized FL with Adaptive Batchnorm for Healthcare (FedAP) [Lu et al., 2022].

Paper: W. Lu, J. Wang, Y. Chen, X. Qin, R. Xu, D. Dimitriadis, T. Qin, "Personalized Federated
Learning with Adaptive Batchnorm for Healthcare", IEEE Transactions on Big Data 2022, arXiv:2112.00734.

Key idea: how similar two hospitals are is read off the statistics their data produce at every
BatchNorm layer of a common pre-trained model. Each client passes its training data through that
model once and uploads, per BN layer, the channel means and variances of the layer's input. The
distance of clients ``i, j`` is ``sum_l sqrt(||mu_il - mu_jl||^2 + ||sigma_il - sigma_jl||^2)`` (the
Wasserstein distance of the diagonal Gaussians); client ``i``'s aggregation weights are
``w_ii = model_momentum`` and ``w_ij`` proportional to ``1 / d_ij`` summing to ``1 - model_momentum``.
From then on the server builds one model per client, ``sum_j w_ij theta_j`` for every key but the
BatchNorm ones, which each client keeps as its own (as FedBN), and sends it as the client's start.

Substitute for the pre-trained model: there is no server-side data here, so the common model is
the FedAvg model after ``pretrain_rounds`` warm-up rounds (FL-bench warms up the same way); the
statistics pass runs at the start of round ``pretrain_rounds + 1`` on that common model, before
local training. The personalised model is the client's own trained model; the global model is
the plain FedAvg mean. Defaults: ``model_momentum = 0.5`` (the official code's), one warm-up round.

Shares beyond weights: per-layer channel means and variances of the client's BN inputs (statistics).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from algorithms.aggregation import StateDict, weighted_mean
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
        name="fedap",
        full_name="Adaptive Batchnorm for Healthcare (FedAP)",
        key_idea="Client similarity from the BatchNorm-input statistics of a common warm-up model gives "
        "each hospital its own aggregation weights; BatchNorm layers stay local. Shares per-layer "
        "feature means and variances once.",
        category="feature_skew",
        also_fits=("personalised",),
        choose_when="Hospitals differ by scanner or staining style (feature skew) and some are more alike "
        "than others; each gets a model mixed mostly from similar sites. Full participation expected.",
        paper="Lu et al., 2022, arXiv:2112.00734",
        shares=("statistics",),
    ),
)

STATS = "bn_stats"
_STATS_ROUND = "fedap_stats"


def bn_input_statistics(model: nn.Module, x: Tensor, sums: dict[str, Tensor]) -> None:
    """Add each BatchNorm layer's input channel sums, squared sums and count to ``sums``."""
    hooks = []

    def grab(name: str):
        def hook(_m: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            z = inputs[0].detach().float()
            z = z.transpose(0, 1).reshape(z.shape[1], -1)  # channels x (N * H * W)
            for key, val in (("sum", z.sum(1)), ("sq", z.pow(2).sum(1)), ("n", torch.tensor([z.shape[1]], dtype=torch.float32, device=z.device))):
                sums[f"{name}.{key}"] = sums.get(f"{name}.{key}", 0) + val
        return hook

    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            hooks.append(m.register_forward_pre_hook(grab(name)))
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()


def similarity_weights(stats: Sequence[dict[str, Tensor]], momentum: float) -> Tensor:
    """FedAP's ``[M, M]`` aggregation weights from each client's BN-input ``{layer.sum, .sq, .n}`` sums."""
    layers = sorted({k.rsplit(".", 1)[0] for k in stats[0]})

    def moments(s: dict[str, Tensor], layer: str) -> tuple[Tensor, Tensor]:
        n = s[f"{layer}.n"].double()
        mean = s[f"{layer}.sum"].double() / n
        return mean, (s[f"{layer}.sq"].double() / n - mean.pow(2)).clamp(min=0)

    m = len(stats)
    mom = [[moments(s, layer) for layer in layers] for s in stats]
    dist = torch.zeros(m, m, dtype=torch.float64)
    for i in range(m):
        for j in range(m):
            if i != j:
                dist[i, j] = sum(((a[0] - b[0]).pow(2).sum() + (a[1].sqrt() - b[1].sqrt()).pow(2).sum()).sqrt()
                                 for a, b in zip(mom[i], mom[j]))
    inv = torch.where(dist > 0, 1.0 / dist.clamp(min=1e-300), torch.full_like(dist, 1e14))
    inv.fill_diagonal_(0.0)
    rows = inv.sum(1, keepdim=True)
    w = torch.where(rows > 0, inv / rows.clamp(min=1e-300), torch.zeros_like(inv)) * (1 - momentum)
    w.fill_diagonal_(momentum)
    if m == 1:
        w.fill_(1.0)
    return w


@register("fedap")
class FedAP(FLAlgorithm):
    """Per-client aggregation weighted by BN-statistics similarity; BatchNorm layers stay with each client.

    Args:
        model_momentum: weight of a client's own model in its aggregation.
        pretrain_rounds: FedAvg warm-up rounds before the statistics pass.
    """

    primary_model = "personal"

    def __init__(self, model_momentum: float = 0.5, pretrain_rounds: int = 1) -> None:
        self.model_momentum = model_momentum
        self.pretrain_rounds = pretrain_rounds

    def validate(self) -> None:
        if not 0.0 <= self.model_momentum <= 1.0:
            raise ValueError(f"FedAP model_momentum must be in [0, 1], got {self.model_momentum}")
        if self.pretrain_rounds < 0:
            raise ValueError(f"FedAP pretrain_rounds must be >= 0, got {self.pretrain_rounds}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.weights_: dict[int, dict[int, float]] = {}
        self.models_: dict[int, StateDict] = {}

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(config={_STATS_ROUND: server.round == self.pretrain_rounds + 1})

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        return self.models_.get(client_id, global_state)

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        with_stats = [u for u in updates if STATS in u.message.arrays]
        if with_stats:
            w = similarity_weights([u.message.arrays[STATS] for u in with_stats], self.model_momentum)
            ids = [u.client_id for u in with_stats]
            self.weights_ = {i: {j: float(w[a, b]) for b, j in enumerate(ids)} for a, i in enumerate(ids)}
        bn = set(server.info.bn_keys)
        for u in updates:
            row = self.weights_.get(u.client_id)
            if not row:
                continue
            peers = [o for o in updates if o.client_id in row]
            mixed = weighted_mean([o.weights for o in peers], [row[o.client_id] for o in peers])
            self.models_[u.client_id] = {k: u.weights[k] if k in bn else v for k, v in mixed.items()}
        return combined

    # ----------------------------------------------------------------- client
    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        first = [Phase(epochs=1, kind="observe")] if ctx.message.config.get(_STATS_ROUND) else []
        return [*first, *super().local_phases(ctx)]

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        bn_input_statistics(model, batch.x, ctx.scratch.setdefault(STATS, {}))

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        stats = ctx.scratch.get(STATS)
        return Message(arrays={STATS: stats}) if stats else Message()
