"""Personalized FedAvg (Per-FedAvg) [Fallah et al., 2020].

Paper: A. Fallah, A. Mokhtari, A. Ozdaglar, "Personalized Federated Learning with Theoretical
Guarantees: A Model-Agnostic Meta-Learning Approach", NeurIPS 2020, arXiv:2002.07948.

Key idea: the federation learns a *meta-model* ``w`` that is a good starting point for one step of
local adaptation, by minimising ``F(w) = mean_i f_i(w - alpha * grad f_i(w))`` (MAML). Each local step
takes two independent batches ``D, D'`` (here the two halves of one mini-batch)::

    w_tmp = w - alpha * grad f(w; D)
    w    <- w - beta * (I - alpha * H(w; D)) grad f(w_tmp; D')

The first-order version (``"fo"``) drops the Hessian term; the Hessian-free version (``"hf"``)
keeps it; here it is the exact Hessian-vector product by double back-propagation (what the paper's
finite-difference estimate approximates, so no ``delta`` is needed). The server averages as FedAvg.
Before a client evaluates its personalised model it takes one SGD step of size ``alpha`` from the
current global model on one batch of its training data (:meth:`adapt_phases`); the global model is
evaluated as is. Defaults: first-order, ``beta = 0.001`` (FL-bench's), ``alpha`` = the run's learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from algorithms.api import Batch, ClientContext, FLAlgorithm, Phase
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="perfedavg",
        full_name="Personalized FedAvg (Per-FedAvg, MAML-style)",
        key_idea="Clients train a meta-model by first-order (or Hessian-free) MAML steps, so that one "
        "gradient step on a site's own data personalises it; evaluation adapts with that one step.",
        category="personalised",
        choose_when="Sites differ and each can afford one fine-tuning step on its own data before use; "
        "good when new sites should adapt cheaply from a shared starting point.",
        paper="Fallah et al., 2020, arXiv:2002.07948",
    ),
)

VERSIONS = ("fo", "hf")


@register("perfedavg")
class PerFedAvg(FLAlgorithm):
    """MAML-style local steps on the global model; one adaptation step before personal evaluation.

    Args:
        alpha: the inner (adaptation) step size; ``None`` uses the run's learning rate.
        beta: the outer (meta) step size of the local training.
        version: ``"fo"`` (first-order) or ``"hf"`` (with the Hessian-vector product).
    """

    primary_model = "personal"

    def __init__(self, alpha: float | None = None, beta: float = 0.001, version: str = "fo") -> None:
        self.alpha = alpha
        self.beta = beta
        self.version = version

    def validate(self) -> None:
        if self.alpha is not None and self.alpha <= 0:
            raise ValueError(f"Per-FedAvg alpha must be > 0 or None (the run's lr), got {self.alpha}")
        if self.beta <= 0:
            raise ValueError(f"Per-FedAvg beta must be > 0, got {self.beta}")
        if self.version not in VERSIONS:
            raise ValueError(f"Per-FedAvg version must be one of {VERSIONS}, got {self.version!r}")

    def _alpha(self, ctx: ClientContext) -> float:
        return self.alpha if self.alpha is not None else ctx.lr

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=ctx.local_epochs, lr=self.beta)]

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if ctx.round == 0:  # the adaptation before evaluation: a plain step
            return batch.loss
        n = len(batch.y)
        half = n // 2 if n >= 4 else n
        x1, y1 = batch.x[:half], batch.y[:half]
        x2, y2 = (batch.x[half:], batch.y[half:]) if half < n else (x1, y1)
        params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        inner = F.cross_entropy(functional_call(model, params, (x1,)), y1)
        second = self.version == "hf"
        grads = torch.autograd.grad(inner, list(params.values()), create_graph=second, allow_unused=True)
        alpha = self._alpha(ctx)
        tmp = {k: p if g is None else p - alpha * (g if second else g.detach())
               for (k, p), g in zip(params.items(), grads)}
        return F.cross_entropy(functional_call(model, tmp, (x2,)), y2)

    def adapt_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=1, lr=self._alpha(ctx), max_steps=1)]
