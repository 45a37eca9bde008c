"""Federated Expectation-Maximisation (FedEM) [Marfoq et al., 2021].

Paper: O. Marfoq, G. Neglia, A. Bellet, L. Kameni, R. Vidal, "Federated Multi-Task Learning under a
Mixture of Distributions", NeurIPS 2021, arXiv:2108.10252.

Key idea: every client's data distribution is a mixture of ``M`` shared underlying distributions,
so the federation learns ``M`` shared component models and each client only its mixture weights
``pi_i`` (Algorithm 1). Each round a client runs an E-step over its data, the responsibilities
``q_n(m) = pi_m exp(-loss_m(x_n, y_n)) / sum_k pi_k exp(-loss_k(x_n, y_n))``, sets ``pi_i`` to their
mean (M-step for the weights) and trains every component on the ``q``-weighted loss
``sum_m mean_n q_n(m) loss_m``; the server averages each component over the clients. A client
predicts with its own mixture ``sum_m pi_im softmax(f_m(x))`` (the personalised evaluation); the
global evaluation uses uniform weights. The model is wrapped into ``M`` components (the first is
the engine's model, the others re-initialised), so state-dict keys are ``components.<m>.<key>``.
Default ``M = 3`` (the paper's).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.api import Batch, ClientContext, EvalContext, FLAlgorithm, Message, Phase
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedem",
        full_name="Federated Expectation-Maximisation (FedEM)",
        key_idea="M shared component models learned by federated EM; each client learns only its mixture "
        "weights over them and predicts with its own mixture.",
        category="personalised",
        also_fits=("feature_skew",),
        choose_when="Sites look like blends of a few kinds of population (e.g. scanner types or patient "
        "groups); costs M times the compute and communication of FedAvg.",
        paper="Marfoq et al., 2021, arXiv:2108.10252",
    ),
)

PI = "fedem_pi"


def _reinit(module: nn.Module) -> None:
    for m in module.modules():
        if m is not module and hasattr(m, "reset_parameters"):
            m.reset_parameters()


class Mixture(nn.Module):
    """``M`` component models; the protocol methods (features, head, classifier) are component 0's."""

    def __init__(self, model: nn.Module, n_components: int) -> None:
        super().__init__()
        extra = []
        for _ in range(n_components - 1):
            c = copy.deepcopy(model)
            _reinit(c)
            extra.append(c)
        self.components = nn.ModuleList([model, *extra])

    def forward_features(self, x: Tensor) -> Tensor:
        return self.components[0].forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        return self.components[0].forward_head(x, pre_logits=pre_logits)

    def get_classifier(self) -> nn.Module:
        return self.components[0].get_classifier()

    def component_losses(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-example cross-entropy of every component, ``[N, M]``."""
        return torch.stack([F.cross_entropy(c(x), y, reduction="none") for c in self.components], dim=1)

    def mixture_logits(self, x: Tensor, pi: Tensor) -> Tensor:
        """``log sum_m pi_m softmax(f_m(x))``: log-probabilities of the mixture's prediction."""
        logp = torch.stack([F.log_softmax(c(x), dim=1) for c in self.components], dim=0)
        return torch.logsumexp(logp + pi.clamp(min=1e-12).log().view(-1, 1, 1).to(logp.dtype), dim=0)

    def forward(self, x: Tensor) -> Tensor:
        m = len(self.components)
        return self.mixture_logits(x, torch.full((m,), 1.0 / m, device=x.device))


def responsibilities(losses: Tensor, pi: Tensor) -> Tensor:
    """E-step: ``q_n(m)`` proportional to ``pi_m exp(-loss_nm)``, rows summing to 1."""
    return torch.softmax(pi.clamp(min=1e-12).log().to(losses.dtype)[None] - losses, dim=1)


@register("fedem")
class FedEM(FLAlgorithm):
    """M shared components trained by federated EM; per-client mixture weights.

    Args:
        n_components: number M of component models.
    """

    primary_model = "personal"

    def __init__(self, n_components: int = 3) -> None:
        self.n_components = n_components

    def validate(self) -> None:
        if self.n_components < 1:
            raise ValueError(f"FedEM n_components must be >= 1 (the paper uses 3), got {self.n_components}")

    def build_model(self, model: nn.Module) -> nn.Module:
        return Mixture(model, self.n_components)

    def _pi(self, state: dict) -> Tensor:
        if PI in state:
            return state[PI]["pi"]
        return torch.full((self.n_components,), 1.0 / self.n_components)

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=1, kind="observe"), *super().local_phases(ctx)]

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.scratch["q"] = torch.zeros(ctx.num_samples, self.n_components)

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        losses = model.component_losses(batch.x, batch.y).float().cpu()
        ctx.scratch["q"][batch.index.cpu()] = responsibilities(losses, self._pi(ctx.state).cpu())

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        q = ctx.scratch["q"][batch.index.cpu()].to(batch.x.device)
        return (q * model.component_losses(batch.x, batch.y)).sum(dim=1).mean()

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        ctx.state[PI] = {"pi": ctx.scratch["q"].mean(dim=0)}
        return Message()

    def evaluation_logits(self, ctx: EvalContext, model: nn.Module, x: Tensor) -> Tensor:
        m = self.n_components
        pi = self._pi(ctx.state) if ctx.model_kind == "personal" else torch.full((m,), 1.0 / m)
        return model.mixture_logits(x, pi.to(x.device))


