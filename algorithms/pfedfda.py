"""Personalised FL via feature distribution adaptation (pFedFDA) [Mclaughlin et al., 2024].

Paper: C. Mclaughlin, L. Su, "Personalized Federated Learning via Feature Distribution Adaptation",
NeurIPS 2024, arXiv:2411.00329.

Key idea: the classifier is generative. Features are modelled as class-conditional Gaussians with
one shared covariance, ``N(mu_c, Sigma)``, which gives a linear (LDA) head
``w_c = Sigma^-1 mu_c``, ``b_c = -1/2 mu_c^T Sigma^-1 mu_c + log pi_c``. Each round the server sends
the head built from the global estimates; clients train the feature extractor with that head
frozen, then estimate their own class means and covariance on their features and upload the
sufficient statistics (per-class sums and counts, the scatter sum x x^T). The server pools them
into new global estimates. A client personalises by adapting the distribution, not the weights:
its estimates are interpolated with the global ones, ``mu = b mu_local + (1 - b) mu_global`` (same
for Sigma), with ``b`` picked by cross-validation on its own features (2 folds here, over the grid
0, 0.1, ..., 1), which trades the bias of the global estimate against the variance of the local one.

Round 1 trains the whole model (no global estimates yet). Covariances are shrunk towards a scaled
identity (``shrinkage``; not in the paper, which uses a small ridge) so a head exists also with a
handful of images per site. Only statistics leave a client (no features). Defaults: shrinkage 0.1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from algorithms.aggregation import StateDict
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
        name="pfedfda",
        full_name="pFedFDA (feature distribution adaptation)",
        key_idea="A generative (Gaussian, LDA) head from pooled class means and covariance; the body is "
        "trained against it and each client interpolates its own feature statistics with the global "
        "ones, the mix chosen by local cross-validation.",
        category="personalised",
        also_fits=("feature_skew", "label_skew"),
        choose_when="Sites differ in feature distribution (scanner, staining) or label mix and have few "
        "images each; uploads class feature statistics (sums, counts, scatter matrix) besides weights.",
        paper="Mclaughlin et al., 2024, arXiv:2411.00329",
        shares=("statistics",),
    ),
)

STATS = "feature_stats"
GLOBAL = "global_gaussians"
BETAS = tuple(i / 10 for i in range(11))


def gaussians(sums: Tensor, counts: Tensor, scatter: Tensor, shrinkage: float) -> tuple[Tensor, Tensor, Tensor]:
    """Class means, shared (within-class, shrunk) covariance and class priors from sufficient statistics."""
    n = counts.sum().clamp_min(1)
    means = sums / counts.clamp_min(1)[:, None]
    cov = (scatter - (means * counts[:, None]).T @ means) / n
    d = cov.shape[0]
    target = torch.eye(d, dtype=cov.dtype, device=cov.device) * (cov.trace() / d).clamp_min(1e-6)
    return means, (1 - shrinkage) * cov + shrinkage * target, counts / n


def lda_head(means: Tensor, cov: Tensor, priors: Tensor) -> tuple[Tensor, Tensor]:
    """Weights and bias of the linear classifier the Gaussians imply."""
    w = torch.linalg.solve(cov, means.T).T
    b = -0.5 * (w * means).sum(dim=1) + priors.clamp_min(1e-8).log()
    return w, b


def _stats(feats: Tensor, y: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    sums = torch.zeros(num_classes, feats.shape[1], dtype=torch.float64).index_add_(0, y, feats)
    counts = torch.bincount(y, minlength=num_classes).double()
    return sums, counts, feats.T @ feats


@register("pfedfda")
class PFedFDA(FLAlgorithm):
    """Generative LDA head from pooled Gaussians; clients adapt the Gaussians to their data.

    Args:
        shrinkage: weight of the scaled identity in every covariance estimate.
    """

    primary_model = "personal"

    def __init__(self, shrinkage: float = 0.1) -> None:
        self.shrinkage = shrinkage

    def validate(self) -> None:
        if not 0 < self.shrinkage <= 1:
            raise ValueError(f"pFedFDA shrinkage must be in (0, 1] (a covariance needs it to be invertible), "
                             f"got {self.shrinkage}")

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.global_: dict[str, Tensor] = {}

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        return Message(arrays={GLOBAL: self.global_}) if self.global_ else Message()

    def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                  server: ServerContext) -> StateDict:
        out = super().aggregate(global_state, updates, server)
        stats = [u.message.arrays[STATS] for u in updates if STATS in u.message.arrays]
        if not stats:
            return out
        total = {k: sum(s[k] for s in stats) for k in ("sums", "counts", "scatter")}
        means, cov, priors = gaussians(total["sums"], total["counts"], total["scatter"], self.shrinkage)
        self.global_ = {"means": means, "cov": cov, "priors": priors}
        w, b = lda_head(means, cov, priors)
        wk, bk = server.info.head_keys  # the global model's head is the generative classifier
        return {**out, wk: w.to(out[wk].dtype).to(out[wk].device), bk: b.to(out[bk].dtype).to(out[bk].device)}

    # ----------------------------------------------------------------- client
    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        body = frozenset(k for k in ctx.info.param_keys if k not in ctx.info.head_keys)
        train = Phase(ctx.local_epochs, trainable=body) if GLOBAL in ctx.message.arrays else Phase(ctx.local_epochs)
        return [train, Phase(epochs=1, kind="observe")]

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.scratch["feats"], ctx.scratch["labels"] = [], []

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        ctx.scratch["feats"].append(batch.feats.detach().double().cpu())
        ctx.scratch["labels"].append(batch.y.detach().cpu())

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        feats, y = torch.cat(ctx.scratch["feats"]), torch.cat(ctx.scratch["labels"])
        c = ctx.info.num_classes
        sums, counts, scatter = _stats(feats, y, c)
        glob = ctx.message.arrays.get(GLOBAL)
        beta = self.choose_beta(feats, y, c, glob) if glob else 1.0
        means, cov, priors = self.adapted(sums, counts, scatter, glob, beta)
        w, b = lda_head(means, cov, priors)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        wk, bk = ctx.info.head_keys
        state[wk], state[bk] = w.to(state[wk].dtype), b.to(state[bk].dtype)
        ctx.state[PERSONAL_STATE] = state
        ctx.state["pfedfda_beta"] = beta
        return Message(arrays={STATS: {"sums": sums, "counts": counts, "scatter": scatter}})

    def adapted(self, sums: Tensor, counts: Tensor, scatter: Tensor, glob: dict[str, Tensor] | None,
                beta: float) -> tuple[Tensor, Tensor, Tensor]:
        """Local Gaussians interpolated with the global ones (``beta = 1``: local only); local priors."""
        means, cov, priors = gaussians(sums, counts, scatter, self.shrinkage)
        if glob:
            g_means = glob["means"].to(means)
            means = torch.where(counts[:, None] > 0, beta * means + (1 - beta) * g_means, g_means)
            cov = beta * cov + (1 - beta) * glob["cov"].to(cov)
        return means, cov, priors

    def choose_beta(self, feats: Tensor, y: Tensor, num_classes: int, glob: dict[str, Tensor]) -> float:
        """The interpolation weight with the best 2-fold cross-validated accuracy (ties: the smaller)."""
        folds = torch.arange(len(y)) % 2
        best, best_acc = 0.0, -1.0
        for beta in BETAS:
            correct = 0
            for f in (0, 1):
                fit, held = folds != f, folds == f
                if not fit.any() or not held.any():
                    continue
                w, b = lda_head(*self.adapted(*_stats(feats[fit], y[fit], num_classes), glob, beta))
                correct += int(((feats[held] @ w.T + b).argmax(1) == y[held]).sum())
            if correct > best_acc:
                best, best_acc = beta, correct
        return best
