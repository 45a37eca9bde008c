"""The batch loop and evaluation, shared by the FL engine and the baselines.

Both FL clients and the pooled/local baselines go through :func:`run_phase`, so the per-batch cost
is identical and the throughput ratio measures only the engine's per-round overhead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.api import Batch, ClientContext, FLAlgorithm, Phase, features
from fl_core.config import RunConfig
from fl_core.data import Split, normalise
from fl_core.metrics import classification_metrics

__all__ = [
    "PhaseStats", "calibrate_batchnorm", "derive_seed", "evaluate", "make_optimizer", "observe_phase", "predict",
    "run_phase",
]

_EVAL_BATCH = 256


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (seed, round, client, ...): every random stream is a pure
    function of them, which is what makes a resumed run identical to an uninterrupted one."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


@dataclass
class PhaseStats:
    """Totals of one or more phases of training."""

    loss_sum: float = 0.0
    images: int = 0
    steps: int = 0
    seconds: float = 0.0

    def add(self, other: PhaseStats) -> None:
        self.loss_sum += other.loss_sum
        self.images += other.images
        self.steps += other.steps
        self.seconds += other.seconds

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.images if self.images else float("nan")


def make_optimizer(params: list[nn.Parameter], cfg: RunConfig, lr: float) -> torch.optim.Optimizer:
    """The client optimizer the config names (a fresh one per phase, as usual in FL)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def run_phase(
    model: nn.Module, split: Split, phase: Phase, algo: FLAlgorithm, ctx: ClientContext,
    cfg: RunConfig, generator: torch.Generator,
) -> PhaseStats:
    """Train ``model`` in place for ``phase.epochs`` epochs over ``split`` (already on device).

    Calls ``algo.local_loss`` on every batch and ``algo.after_backward`` before every optimizer
    step. Batches of a single example are skipped (BatchNorm cannot train on them). An
    ``"observe"`` phase runs :func:`observe_phase` instead.
    """
    if phase.kind == "observe":
        return observe_phase(model, split, phase, algo, ctx, cfg)
    start = time.perf_counter()
    stats = PhaseStats()
    ctx.phase = phase
    named = dict(model.named_parameters())
    trainable = set(named) if phase.trainable is None else set(phase.trainable) & set(named)
    if not trainable:
        raise ValueError(f"phase {phase} trains no parameter: its trainable keys match none of the model's")
    for n, p in named.items():
        p.requires_grad_(n in trainable)
    opt = make_optimizer([named[n] for n in named if n in trainable], cfg, phase.lr or cfg.lr)
    model.train()
    n = len(split)
    try:
        for _ in range(phase.epochs):
            order = torch.randperm(n, generator=generator).to(split.x.device)
            for i in range(0, n, cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                if idx.numel() < 2 or (phase.max_steps is not None and stats.steps >= phase.max_steps):
                    continue
                x, y = normalise(split.x[idx]), split.y[idx]
                feats, logits = features(model, x)
                loss = algo.local_loss(ctx, model, Batch(x, y, logits, feats, F.cross_entropy(logits, y), idx))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                algo.after_backward(ctx, model)
                opt.step()
                ctx.steps += 1
                stats.steps += 1
                stats.images += int(idx.numel())
                stats.loss_sum += float(loss.detach()) * int(idx.numel())
    finally:
        for p in named.values():
            p.requires_grad_(True)
    stats.seconds = time.perf_counter() - start
    return stats


@torch.no_grad()
def observe_phase(model: nn.Module, split: Split, phase: Phase, algo: FLAlgorithm, ctx: ClientContext,
                  cfg: RunConfig) -> PhaseStats:
    """Show ``algo.observe`` every batch of ``split`` in data order, in eval mode and without gradients.

    The pass after training that statistics, prototypes and Fisher traces are computed from. It
    takes no optimizer step, so its images are not counted as training images.
    """
    start = time.perf_counter()
    ctx.phase = phase
    model.eval()
    n = len(split)
    for _ in range(phase.epochs):
        for i in range(0, n, cfg.batch_size):
            idx = torch.arange(i, min(i + cfg.batch_size, n), device=split.x.device)
            x, y = normalise(split.x[idx]), split.y[idx]
            feats, logits = features(model, x)
            algo.observe(ctx, model, Batch(x, y, logits, feats, F.cross_entropy(logits, y), idx))
    stats = PhaseStats()
    stats.seconds = time.perf_counter() - start
    return stats


@torch.no_grad()
def predict(model: nn.Module, split: Split, logits_fn: Callable[[nn.Module, Tensor], Tensor] | None = None) -> Tensor:
    """Logits for every example of ``split`` (eval mode, on the split's device), on CPU.

    ``logits_fn(model, x)`` replaces ``model(x)`` (an algorithm's evaluation forward).
    """
    model.eval()
    fn = logits_fn or (lambda m, x: m(x))
    out = [fn(model, normalise(split.x[i:i + _EVAL_BATCH])).float().cpu() for i in range(0, len(split), _EVAL_BATCH)]
    return torch.cat(out) if out else torch.empty(0, model.get_classifier().out_features)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, split: Split) -> bool:
    """Re-estimate every BatchNorm's running statistics on ``split`` (AdaBN; Li et al., 2018).

    Why: FedAvg averages the clients' BatchNorm statistics, and under per-site scanner styles the
    mean of the sites' statistics describes none of them. The global model then shifts every site's
    activations and predicts one class for all its images, although its weights are good (fundus,
    scale 1, FedAvg: balanced accuracy 0.56 with the averaged statistics, 0.81 with each site's own).
    A hospital that receives the model can re-estimate the statistics on its own training images
    without labels and without sending anything back. Trained weights are left untouched.

    Returns:
        whether anything was re-estimated (False for a model without BatchNorm or fewer than two images).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or len(split) < 2:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.eval()
    for m in norms:  # only the norms learn statistics; dropout and stochastic depth stay off
        m.train()
    try:
        for i in range(0, len(split), _EVAL_BATCH):
            batch = split.x[i:i + _EVAL_BATCH]
            if len(batch) > 1:  # BatchNorm1d heads cannot normalise a single example
                model(normalise(batch))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return True


def evaluate(model: nn.Module, split: Split,
             logits_fn: Callable[[nn.Module, Tensor], Tensor] | None = None) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of ``model`` on ``split`` and the logits (for pooling across clients)."""
    logits = predict(model, split, logits_fn).numpy()
    return classification_metrics(split.y.cpu().numpy(), logits), logits
