"""Data-free Knowledge Distillation with a server-side Generator (FedGen) [Zhu et al., 2021].

Paper: Z. Zhu, J. Hong, J. Zhou, "Data-Free Knowledge Distillation for Heterogeneous Federated
Learning", ICML 2021, arXiv:2105.10056.

Key idea: the server learns, without any data, a generator ``G(y, eps)`` of *features* (the
classifier's input) that the ensemble of the clients' classifier heads labels as ``y`` (paper Eq. 4:
cross-entropy of the softmax of the label-weighted average of the clients' head logits, each client
weighted per class by its share of that class). The generator's weights are sent to the clients,
where it regularises local training (the paper's Eq. 5 as in its reference code):

* teacher term ``alpha * CE(head(G(y', eps)), y')`` for labels ``y'`` drawn from those the client holds,
  scaled by ``generator_batch_size / batch_size``: the head also fits the consensus features;
* latent term ``beta * KL(softmax(head(G(y, eps))) || softmax(model(x)))`` on the batch's own labels:
  the model's prediction on real images is pulled towards the consensus for that label.

Both coefficients decay by ``coef_decay`` per round. The first round has no trained generator and is
plain FedAvg. Clients upload their class counts (``shares=("statistics",)``) so the server can weight
the heads; no features or images leave a client. Defaults follow the paper's code as FL-bench runs it:
``alpha = beta = 10``, decay 0.98, noise 32, hidden 256, Adam at 3e-4, 25 generator steps of 32 per
round. The generator is a two-layer MLP on ``[one-hot(y), eps]`` (the paper's, without its BatchNorm,
so that a frozen copy behaves the same on every client); its diversity term (weight 0 by default in
the reference code) is left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from algorithms.aggregation import StateDict
from algorithms.api import Batch, ClientContext, ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="fedgen",
        full_name="Data-free Knowledge Distillation with a Generator (FedGen)",
        key_idea="The server trains a feature generator that the ensemble of client heads agrees on (no data "
        "needed) and sends it to the clients, whose local training is regularised by the generated features.",
        category="label_skew",
        also_fits=("generic",),
        choose_when="Strong label skew (sites missing classes) where FedAvg's heads disagree; costs a small "
        "generator trained on the server each round; sites share their class counts.",
        paper="Zhu et al., 2021, arXiv:2105.10056",
        shares=("statistics",),
    ),
)

GENERATOR = "generator"
COUNTS = "label_counts"


class FeatureGenerator(nn.Module):
    """``G(y, eps)``: one-hot label and Gaussian noise -> a feature vector of the classifier's input size."""

    def __init__(self, num_classes: int, feature_dim: int, noise_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.num_classes, self.noise_dim = num_classes, noise_dim
        self.net = nn.Sequential(nn.Linear(num_classes + noise_dim, hidden_dim), nn.ReLU(),
                                 nn.Linear(hidden_dim, feature_dim))

    def forward(self, y: Tensor, noise: Tensor) -> Tensor:
        return self.net(torch.cat([F.one_hot(y, self.num_classes).to(noise.dtype), noise], dim=1))


def _head_params(weights: StateDict, head_keys: Sequence[str], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: weights[k] for k in head_keys}


def _classifier_prefix(model: nn.Module) -> str:
    clf = model.get_classifier()
    return next(n for n, m in model.named_modules() if m is clf) + "."


@register("fedgen")
class FedGen(FLAlgorithm):
    """FedAvg with a server-trained feature generator regularising the clients.

    Args:
        alpha: weight of the teacher term (paper code: 10).
        beta: weight of the latent (KL) term (paper code: 10).
        coef_decay: per-round decay of both weights (0.98).
        noise_dim: generator noise size (32).
        hidden_dim: generator hidden width (256).
        generator_lr: Adam learning rate of the generator (3e-4).
        generator_steps: generator updates per round (25).
        generator_batch_size: generated features per step, on the server and per client batch (32).
    """

    def __init__(self, alpha: float = 10.0, beta: float = 10.0, coef_decay: float = 0.98, noise_dim: int = 32,
                 hidden_dim: int = 256, generator_lr: float = 3e-4, generator_steps: int = 25,
                 generator_batch_size: int = 32) -> None:
        self.alpha, self.beta, self.coef_decay = alpha, beta, coef_decay
        self.noise_dim, self.hidden_dim = noise_dim, hidden_dim
        self.generator_lr, self.generator_steps, self.generator_batch_size = generator_lr, generator_steps, \
            generator_batch_size

    def validate(self) -> None:
        if self.alpha < 0 or self.beta < 0:
            raise ValueError(f"FedGen alpha and beta must be >= 0, got {self.alpha}, {self.beta}")
        if not 0 < self.coef_decay <= 1:
            raise ValueError(f"FedGen coef_decay must be in (0, 1], got {self.coef_decay}")
        for n in ("noise_dim", "hidden_dim", "generator_steps", "generator_batch_size"):
            if int(getattr(self, n)) < 1:
                raise ValueError(f"FedGen {n} must be >= 1, got {getattr(self, n)}")
        if self.generator_lr <= 0:
            raise ValueError(f"FedGen generator_lr must be > 0, got {self.generator_lr}")

    def _generator(self, num_classes: int, feature_dim: int) -> FeatureGenerator:
        return FeatureGenerator(num_classes, feature_dim, self.noise_dim, self.hidden_dim)

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        feature_dim = next(global_state[k] for k in server.info.head_keys if global_state[k].dim() == 2).shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            gen = self._generator(server.info.num_classes, feature_dim)
        self.generator_: StateDict = {k: v.detach().clone() for k, v in gen.state_dict().items()}
        self.generator_opt_: dict = {}
        self.generator_trained_ = False

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(arrays={GENERATOR: self.generator_}) if self.generator_trained_ else Message()

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        if updates and all(COUNTS in u.message.arrays for u in updates) and server.make_model is not None:
            self.train_generator(combined, updates, server)
        return combined

    def train_generator(self, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext) -> None:
        """``generator_steps`` Adam steps on the CE of the label-weighted ensemble of client heads."""
        model = server.make_model(combined)  # type: ignore[misc]
        head, prefix = model.get_classifier(), _classifier_prefix(model)
        device = next(head.parameters()).device
        counts = torch.stack([u.message.arrays[COUNTS][COUNTS].to(device, torch.float64) for u in updates])
        per_class = counts.sum(0)
        share = (counts / per_class.clamp_min(1.0)).float()          # (clients, classes): weight of k for label y
        heads = [{k: v.detach() for k, v in _head_params(u.weights, server.info.head_keys, prefix).items()}
                 for u in updates]
        gen = self._generator(server.info.num_classes, heads[0]["weight"].shape[1]).to(device)
        gen.load_state_dict(self.generator_)
        opt = torch.optim.Adam(gen.parameters(), lr=self.generator_lr)
        if self.generator_opt_:
            opt.load_state_dict(self.generator_opt_)
        rng = torch.Generator().manual_seed(int(server.round))
        for p in head.parameters():
            p.requires_grad_(False)
        for _ in range(self.generator_steps):
            y = torch.multinomial(per_class.float().cpu(), self.generator_batch_size, True, generator=rng).to(device)
            z = gen(y, torch.randn(len(y), self.noise_dim, generator=rng).to(device))
            logits = sum(share[k, y][:, None] * functional_call(head, heads[k], (z,)) for k in range(len(heads)))
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.generator_ = {k: v.detach().clone() for k, v in gen.state_dict().items()}
        self.generator_opt_ = opt.state_dict()
        self.generator_trained_ = True

    # ----------------------------------------------------------------- client
    def begin_client(self, ctx: ClientContext) -> None:
        weights = ctx.message.arrays.get(GENERATOR)
        if weights:
            gen = self._generator(ctx.info.num_classes, weights["net.2.weight"].shape[0])
            gen.load_state_dict(weights)
            ctx.scratch[GENERATOR] = gen.to(weights["net.2.weight"].device).eval().requires_grad_(False)
            ctx.scratch["labels"] = torch.nonzero(ctx.label_counts > 0).flatten()

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        gen = ctx.scratch.get(GENERATOR)
        if gen is None:
            return batch.loss
        decay = self.coef_decay ** (ctx.round - 1)
        head, dev = model.get_classifier(), batch.logits.device
        # latent term: the consensus prediction for the batch's labels teaches the prediction on real images
        z = gen(batch.y, torch.randn(len(batch.y), self.noise_dim, device=dev))
        target = F.softmax(head(z), dim=1).detach()
        latent = F.kl_div(F.log_softmax(batch.logits, dim=1), target, reduction="batchmean")
        # teacher term: the head also fits generated features of the labels this client holds
        labels = ctx.scratch["labels"].to(dev)
        y_gen = labels[torch.randint(len(labels), (self.generator_batch_size,), device=dev)]
        teacher = F.cross_entropy(head(gen(y_gen, torch.randn(len(y_gen), self.noise_dim, device=dev))), y_gen)
        ratio = self.generator_batch_size / max(len(batch.y), 1)
        return batch.loss + decay * (self.alpha * ratio * teacher + self.beta * latent)

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        return Message(arrays={COUNTS: {COUNTS: ctx.label_counts.to(torch.float64)}})
