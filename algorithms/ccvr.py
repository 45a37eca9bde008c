"""Classifier Calibration with Virtual Representations (CCVR) [Luo et al., 2021].

Paper: M. Luo, F. Chen, D. Hu, Y. Zhang, J. Liang, J. Feng, "No Fear of Heterogeneity: Classifier
Calibration for Federated Learning with Non-IID Data", NeurIPS 2021, arXiv:2106.05001.

Key idea: under label skew the classifier is the most biased part of a FedAvg model. CCVR keeps
FedAvg's training and calibrates the classifier on the server: every client passes its training data
through the global model and uploads, per class, the count, the sum and the sum of outer products of
its features; the server pools them into each class's feature mean and covariance (exactly the
paper's Eq. 3-4), samples ``samples_per_class`` virtual features per class from ``N(mu_c, Sigma_c)``
and retrains only the classifier on them with SGD. No image ever leaves a client, but class-wise
feature statistics do (``shares=("statistics",)``).

Rounds here have two stages (``stages``): stage 0 is FedAvg; in stage 1 the sampled clients run only
a pass over their data on the freshly aggregated model and upload the statistics; the server then
calibrates. The paper calibrates once after training; this module calibrates after every round so
that every evaluated global model is the calibrated one (the next round starts from it). Defaults:
200 virtual features per class (FL-bench), one epoch of SGD at ``lr=0.01`` with batches of 32.
Sampling is seeded by the round, so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.aggregation import StateDict
from algorithms.api import Batch, ClientContext, ClientUpdate, FLAlgorithm, Message, Phase, ServerContext
from algorithms.catalog_entry import CatalogEntry
from algorithms.registry import register

CATALOG = (
    CatalogEntry(
        name="ccvr",
        full_name="Classifier Calibration with Virtual Representations (CCVR)",
        key_idea="FedAvg, then the server retrains the classifier on virtual features sampled from the "
        "pooled class-wise feature means and covariances the clients upload (statistics of their "
        "features, no images).",
        category="label_skew",
        also_fits=("generic",),
        choose_when="Sites' label distributions differ strongly and FedAvg's global model favours the "
        "majority classes; a second, forward-only pass per round; the sites must accept sharing "
        "class-wise feature means and covariances.",
        paper="Luo et al., 2021, arXiv:2106.05001",
        shares=("statistics",),
    ),
)

#: Message groups: the per-class feature statistics a client uploads in the statistics stage.
STATS = "ccvr_stats"
_PASS = "ccvr_statistics_pass"


def class_moments(count: Tensor, total: Tensor, outer: Tensor) -> tuple[Tensor, Tensor]:
    """Per-class mean ``(C, d)`` and unbiased covariance ``(C, d, d)`` from pooled sums (float64)."""
    n = count.clamp_min(1.0)
    mean = total / n[:, None]
    cov = (outer - n[:, None, None] * mean[:, :, None] * mean[:, None, :]) / (n - 1).clamp_min(1.0)[:, None, None]
    return mean, cov


def sample_gaussian(mean: Tensor, cov: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` draws from ``N(mean, cov)``; a singular covariance (fewer examples than dimensions) is fine."""
    evals, evecs = torch.linalg.eigh((cov + cov.T) / 2)
    root = evecs * evals.clamp_min(0.0).sqrt()
    z = torch.randn(n, len(mean), generator=generator, dtype=torch.float64)
    return mean + z @ root.T


@register("ccvr")
class CCVR(FLAlgorithm):
    """FedAvg plus server-side classifier calibration on virtual features.

    Args:
        samples_per_class: virtual features drawn per class (FL-bench: 200).
        calibration_lr: SGD learning rate of the classifier's retraining.
        calibration_epochs: passes over the virtual features.
        calibration_batch_size: virtual features per SGD step.
    """

    def __init__(self, samples_per_class: int = 200, calibration_lr: float = 0.01, calibration_epochs: int = 1,
                 calibration_batch_size: int = 32) -> None:
        self.samples_per_class = samples_per_class
        self.calibration_lr = calibration_lr
        self.calibration_epochs = calibration_epochs
        self.calibration_batch_size = calibration_batch_size

    def validate(self) -> None:
        for name in ("samples_per_class", "calibration_epochs", "calibration_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CCVR {name} must be >= 1, got {getattr(self, name)}")
        if self.calibration_lr <= 0:
            raise ValueError(f"CCVR calibration_lr must be > 0, got {self.calibration_lr}")

    # ----------------------------------------------------------------- rounds: train, then statistics
    def stages(self, server: ServerContext) -> list[tuple[int, ...]]:
        return [server.sampled, server.sampled]

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(config={_PASS: server.stage == 1})

    # ----------------------------------------------------------------- client
    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        if ctx.message.config.get(_PASS):
            return [Phase(epochs=1, kind="observe")]
        return super().local_phases(ctx)

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        f = batch.feats.detach().to(torch.float64).flatten(1)
        c, d = ctx.info.num_classes, f.shape[1]
        s = ctx.scratch.setdefault(STATS, {"count": torch.zeros(c, dtype=torch.float64),
                                           "sum": torch.zeros(c, d, dtype=torch.float64),
                                           "outer": torch.zeros(c, d, d, dtype=torch.float64)})
        y = batch.y.cpu()
        f = f.cpu()
        s["count"].index_add_(0, y, torch.ones(len(y), dtype=torch.float64))
        s["sum"].index_add_(0, y, f)
        s["outer"].index_add_(0, y, f[:, :, None] * f[:, None, :])

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        return Message(arrays={STATS: ctx.scratch[STATS]}) if STATS in ctx.scratch else Message()

    # ----------------------------------------------------------------- server
    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        stats = [u.message.arrays[STATS] for u in updates if STATS in u.message.arrays]
        if server.stage == 0 or not stats:
            return combined
        if server.make_model is None:
            raise ValueError("CCVR retrains the classifier on the server: the engine must offer "
                             "ServerContext.make_model")
        count = sum(s["count"] for s in stats)
        mean, cov = class_moments(count, sum(s["sum"] for s in stats), sum(s["outer"] for s in stats))
        return self.calibrate(global_state, mean, cov, count, server)

    def calibrate(self, global_state: StateDict, mean: Tensor, cov: Tensor, count: Tensor,
                  server: ServerContext) -> StateDict:
        """The global weights with the classifier retrained on virtual features of the classes seen twice."""
        gen = torch.Generator().manual_seed(int(server.round))
        classes = [c for c in range(len(count)) if count[c] >= 2]
        if not classes:
            return dict(global_state)
        x = torch.cat([sample_gaussian(mean[c], cov[c], self.samples_per_class, gen) for c in classes]).float()
        y = torch.tensor(classes).repeat_interleave(self.samples_per_class)
        model = server.make_model(global_state)  # type: ignore[misc]
        head = model.get_classifier()
        device = next(head.parameters()).device
        x, y = x.to(device), y.to(device)
        opt = torch.optim.SGD(head.parameters(), lr=self.calibration_lr)
        for _ in range(self.calibration_epochs):
            order = torch.randperm(len(y), generator=gen).to(device)
            for i in range(0, len(y), self.calibration_batch_size):
                idx = order[i:i + self.calibration_batch_size]
                loss = F.cross_entropy(head(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        trained = model.state_dict()
        return {**global_state, **{k: trained[k].detach().clone() for k in server.info.head_keys}}
