"""Adaptive Local Aggregation for personalised FL (FedALA) [Zhang et al., 2023].

Paper: J. Zhang, Y. Hua, H. Wang, T. Song, Z. Xue, R. Ma, H. Guan, "FedALA: Adaptive Local Aggregation
for Personalized Federated Learning", AAAI 2023, arXiv:2212.01197.

Key idea: instead of overwriting its model with the global one at the start of a round, each client
aggregates the two element-wise: the lower layers take the global weights, and the top ``p`` layers
become ``theta_hat = theta_i + (theta_g - theta_i) * W`` with ``W`` in [0, 1] (one weight per
parameter element, initialised to 1 and kept across rounds). ``W`` is learnt by gradient descent on
the local loss of ``theta_hat`` over a random ``s`` percent of the local data (lower layers frozen),
clipped to [0, 1] after every step; the first time until the loss settles (standard deviation of the
last ``num_pre_loss`` losses below ``threshold``), one epoch afterwards. Local training then starts from
``theta_hat`` and the trained model is uploaded, and kept as the client's own ``theta_i``.

Defaults follow the paper and its PFLlib code: ``eta = 1.0``, ``s = 80`` percent, ``p = 1`` layer
(``top_params=2``: the head's weight and bias), ``threshold = 0.1``, ``num_pre_loss = 10``; the
first-time loop is capped at ``max_init_epochs`` epochs so that a loss that never settles still ends.
ALA is skipped while a client has no model of its own yet (its first round).
"""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from algorithms.api import PERSONAL_STATE, Batch, ClientContext, FLAlgorithm, Message, Phase
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedala",
        full_name="Adaptive Local Aggregation (FedALA)",
        key_idea="Each client mixes the global model into its own one element-wise with learnt weights "
        "in [0, 1] on the top layers (lower layers take the global weights), then trains from the mix.",
        category="personalised",
        also_fits=("label_skew", "feature_skew"),
        choose_when="Sites differ and each wants a model for its own data, keeping what suits it from "
        "the global model; costs one extra pass over 80% of the local data per round.",
        paper="Zhang et al., 2023, arXiv:2212.01197",
    ),
)

_W = "fedala_weights"
_INIT_DONE = "fedala_init_done"


@register("fedala")
class FedALA(FLAlgorithm):
    """Element-wise learnt mixing of global and local top layers before local training.

    Args:
        eta: learning rate of the mixing weights W.
        rand_percent: percentage of the local training data ALA learns W on.
        top_params: how many of the model's last parameter tensors are mixed (2: the head).
        threshold: the first-time loop stops when the std of the last ``num_pre_loss`` losses is below it.
        num_pre_loss: how many recent losses the stopping rule looks at.
        max_init_epochs: cap on the first-time loop's epochs.
    """

    primary_model = "personal"

    def __init__(self, eta: float = 1.0, rand_percent: int = 80, top_params: int = 2, threshold: float = 0.1,
                 num_pre_loss: int = 10, max_init_epochs: int = 20) -> None:
        self.eta = eta
        self.rand_percent = rand_percent
        self.top_params = top_params
        self.threshold = threshold
        self.num_pre_loss = num_pre_loss
        self.max_init_epochs = max_init_epochs

    def validate(self) -> None:
        if self.eta <= 0 or not 0 < self.rand_percent <= 100:
            raise ValueError(f"FedALA needs eta > 0 and rand_percent in (0, 100], got {self.eta}, {self.rand_percent}")
        if self.top_params < 1 or self.num_pre_loss < 2 or self.max_init_epochs < 1 or self.threshold < 0:
            raise ValueError("FedALA needs top_params >= 1, num_pre_loss >= 2, max_init_epochs >= 1, threshold >= 0; "
                             f"got {self.top_params}, {self.num_pre_loss}, {self.max_init_epochs}, {self.threshold}")

    def _top(self, ctx: ClientContext) -> tuple[str, ...]:
        return tuple(ctx.info.param_keys[-self.top_params:])

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        train = [Phase(epochs=ctx.local_epochs)]
        if PERSONAL_STATE not in ctx.state:  # no model of its own yet: start from the global one
            return train
        first = not ctx.state.get(_INIT_DONE, False)
        return [Phase(epochs=self.max_init_epochs if first else 1, trainable=frozenset(self._top(ctx))), *train]

    def begin_client(self, ctx: ClientContext) -> None:
        if PERSONAL_STATE not in ctx.state:
            return
        top = self._top(ctx)
        own, glob = ctx.state[PERSONAL_STATE], ctx.global_state
        w = ctx.state.setdefault(_W, {k: torch.ones_like(glob[k]) for k in top})
        ctx.scratch["w"] = {k: w[k].clone().requires_grad_(True) for k in top}
        ctx.scratch["own"] = {k: own[k].to(glob[k].device) for k in top}
        ctx.scratch["losses"] = []
        g = torch.Generator().manual_seed(ctx.round * 100003 + ctx.client_id)
        ctx.scratch["sample"] = torch.rand(ctx.num_samples, generator=g) < self.rand_percent / 100

    def _mixed(self, ctx: ClientContext) -> dict[str, Tensor]:
        own, w = ctx.scratch["own"], ctx.scratch["w"]
        return {k: own[k] + (ctx.global_state[k] - own[k]) * w[k] for k in w}

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if ctx.phase is None or ctx.phase.trainable is None:
            return batch.loss
        keep = ctx.scratch["sample"][batch.index.cpu()].to(batch.y.device) if batch.index is not None else None
        x, y = (batch.x[keep], batch.y[keep]) if keep is not None and keep.any() else (batch.x, batch.y)
        params = {k: v.detach() for k, v in model.named_parameters() if k not in ctx.scratch["w"]}
        buffers = {k: v.clone() for k, v in model.named_buffers()}  # this forward moves no running statistic
        logits = functional_call(model, {**params, **buffers, **self._mixed(ctx)}, (x,))
        loss = F.cross_entropy(logits, y)  # depends on W only: the model's own parameters get no gradient
        ctx.scratch["last_loss"] = float(loss.detach())
        return loss

    @torch.no_grad()
    def after_backward(self, ctx: ClientContext, model: nn.Module) -> None:
        if ctx.phase is None or ctx.phase.trainable is None:
            return
        losses, w = ctx.scratch["losses"], ctx.scratch["w"]
        settled = ctx.scratch.get("settled", False)
        if not settled:
            for k, t in w.items():
                if t.grad is not None:
                    t.sub_(self.eta * t.grad).clamp_(0.0, 1.0)
                    t.grad = None
        params = dict(model.named_parameters())
        for k, v in self._mixed(ctx).items():
            params[k].copy_(v)  # local training starts from theta_hat
        ctx.state[_W] = {k: t.detach().clone() for k, t in w.items()}
        if ctx.state.get(_INIT_DONE, False) or settled:
            return
        losses.append(float(ctx.scratch.get("last_loss", 0.0)))
        recent = losses[-self.num_pre_loss:]
        if len(recent) == self.num_pre_loss and statistics.pstdev(recent) < self.threshold:
            ctx.scratch["settled"] = True

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        if _W in ctx.state:
            ctx.state[_INIT_DONE] = True
        ctx.state[PERSONAL_STATE] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return Message()
