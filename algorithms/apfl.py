"""Adaptive Personalized Federated Learning (APFL) [Deng et al., 2020].

Paper: Y. Deng, M. M. Kamani, M. Mahdavi, "Adaptive Personalized Federated Learning",
arXiv:2003.13461, 2020.

Key idea: each client keeps a local model ``v_i`` and a mixing weight ``alpha_i`` besides the
global model ``w`` (trained and averaged exactly as in FedAvg). Its personalised model is the
mixture ``v_bar_i = alpha_i * v_i + (1 - alpha_i) * w`` (Algorithm 1). The local model is trained
through the mixture, ``v_i <- v_i - lr * grad_v f_i(v_bar_i)`` (= ``alpha_i * grad f_i(v_bar_i)``),
and ``alpha_i`` follows its own gradient ``<v_i - w, grad f_i(v_bar_i)>`` (Eq. 7), clipped to
[0, 1]: a client whose data the global model serves well drifts to small alpha, a very different
client to large alpha. Evaluation of the personalised model uses the mixture with the current global
weights. Defaults: ``alpha = 0.5`` initially, adaptive, alpha's step size equal to the run's learning
rate (the paper and FL-bench both start at 0.5 and adapt).

Here ``w`` inside the mixture is the global model the client received this round (held fixed while
the local model trains, after the global copy's own FedAvg epochs), not the copy being trained in the
same step; the paper interleaves the two updates step by step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from algorithms.aggregation import StateDict
from algorithms.api import PERSONAL_STATE, Batch, ClientContext, FLAlgorithm, Phase
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="apfl",
        full_name="Adaptive Personalized Federated Learning (APFL)",
        key_idea="Each client mixes a local model with the global one, v_bar = alpha v + (1 - alpha) w, "
        "trains the local model through the mixture and learns its own mixing weight alpha.",
        category="personalised",
        also_fits=("feature_skew",),
        choose_when="Sites differ by an unknown amount and each should find its own balance between "
        "the federation's model and a local one; doubles local compute.",
        paper="Deng et al., 2020, arXiv:2003.13461",
    ),
)

ALPHA = "apfl_alpha"


def mixture(local: StateDict, global_: StateDict, alpha: float | Tensor, keys: Any) -> StateDict:
    """``alpha * local + (1 - alpha) * global`` on ``keys`` (floating point); other keys from ``local``."""
    keys = set(keys)
    return {k: alpha * v + (1 - alpha) * global_[k] if k in keys and v.is_floating_point() else v
            for k, v in local.items()}


@register("apfl")
class APFL(FLAlgorithm):
    """FedAvg for the global model plus a local model mixed with it by a learned alpha.

    Args:
        alpha: the initial mixing weight of the local model.
        adaptive_alpha: learn alpha by gradient descent (``False`` keeps it fixed).
        alpha_lr: step size for alpha; ``None`` uses the run's learning rate.
    """

    primary_model = "personal"

    def __init__(self, alpha: float = 0.5, adaptive_alpha: bool = True, alpha_lr: float | None = None) -> None:
        self.alpha = alpha
        self.adaptive_alpha = adaptive_alpha
        self.alpha_lr = alpha_lr

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"APFL alpha must be in [0, 1] (0: global model only, 1: local only), got {self.alpha}")
        if self.alpha_lr is not None and self.alpha_lr <= 0:
            raise ValueError(f"APFL alpha_lr must be > 0 or None (the run's lr), got {self.alpha_lr}")

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=ctx.local_epochs), Phase(epochs=ctx.local_epochs, model="personal")]

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.state.setdefault(ALPHA, float(self.alpha))

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if ctx.phase is None or ctx.phase.model != "personal":
            return batch.loss
        alpha = torch.tensor(float(ctx.state[ALPHA]), device=batch.x.device, requires_grad=self.adaptive_alpha)
        ctx.scratch["alpha"] = alpha
        params = dict(model.named_parameters())
        mixed = {k: alpha * p + (1 - alpha) * ctx.global_state[k] for k, p in params.items()}
        logits = functional_call(model, mixed, (batch.x,))
        return F.cross_entropy(logits, batch.y)

    @torch.no_grad()
    def after_backward(self, ctx: ClientContext, model: nn.Module) -> None:
        alpha = ctx.scratch.get("alpha")
        if ctx.phase is None or ctx.phase.model != "personal" or alpha is None or alpha.grad is None:
            return
        lr = self.alpha_lr or ctx.lr
        ctx.state[ALPHA] = float((alpha - lr * alpha.grad).clamp(0.0, 1.0))

    def personalised_state(self, global_state: StateDict, client_state: dict[str, Any],
                           local_state: StateDict) -> StateDict:
        if PERSONAL_STATE not in client_state:
            return super().personalised_state(global_state, client_state, local_state)
        local = client_state[PERSONAL_STATE]
        params = [k for k in local if k in global_state and not k.endswith(("running_mean", "running_var",
                                                                                 "num_batches_tracked"))]
        return mixture(local, global_state, float(client_state.get(ALPHA, self.alpha)), params)
