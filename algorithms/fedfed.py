"""Federated Feature Distillation (FedFed) [Yang et al., 2023].

Paper: Z. Yang, Y. Zhang, Y. Zheng, X. Tian, H. Peng, T. Liu, B. Han, "FedFed: Feature Distillation
against Data Heterogeneity in Federated Learning", NeurIPS 2023, arXiv:2310.05077.

Key idea: split every image into a *performance-robust* part ``x_r`` that a bottlenecked generator
can reconstruct and a *performance-sensitive* rest ``x_s = x - x_r`` that carries what the classifier
needs. During the first ``distill_rounds`` rounds the clients train the generator (a "distiller" added
to the model and averaged like the rest) jointly with the classifier: reconstruct ``x`` (MSE), and
classify both ``x`` and the noised ``x_s`` (cross-entropy). At the end of the last distillation round
every client passes its training images through the distiller and **uploads ``x_s`` plus Gaussian
noise (``noise_std``, the paper's protection) with the labels**: per-example, data-derived features
leave the site (``shares=("features",)``). The server pools them into a shared set and sends it to the
clients, which from then on add the cross-entropy on a same-sized batch of shared features to each
local step, so every client's update also sees the other sites' class-relevant content.

Simplifications, for this engine: the generator is a small deterministic conv encoder-decoder whose
bottleneck (``bottleneck`` channels at half resolution) plays the role of the paper's VAE and its KL
term; distillation is one joint loss per batch instead of the reference code's three alternating
passes; the shared set travels with every round's configuration (a client keeps nothing of it).
FL-bench distils for 15 rounds of runs of 100 and more; ``distill_rounds`` defaults to 15 too, so a
run must be longer than that for the features to be shared at all. Noise std 0.15 (FL-bench's first
of its two noise levels); loss weights 1.
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
        name="fedfed",
        full_name="Federated Feature Distillation (FedFed)",
        key_idea="Clients learn to split images into a reconstructible part and the class-relevant rest, "
        "then UPLOAD the noised class-relevant features of their training images with labels; the server "
        "shares them with every client, which trains on them beside its own data.",
        category="label_skew",
        also_fits=("feature_skew", "generic"),
        choose_when="Strong heterogeneity between sites AND the sites' governance allows per-image, noise-"
        "protected feature maps with labels to leave the site (shares per-example features); the run must be "
        "longer than distill_rounds; the shared set is sent to every client each round.",
        paper="Yang et al., 2023, arXiv:2310.05077",
        shares=("features",),
    ),
)

DISTILLER = "distiller"
#: Message group of the performance-sensitive features (client -> server after distillation, then back).
SHARED = "fedfed_shared"


class Distiller(nn.Module):
    """Bottlenecked encoder-decoder: ``x_r = decode(encode(x))`` at the input's size."""

    def __init__(self, in_chans: int, bottleneck: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(in_chans, bottleneck, 3, stride=2, padding=1), nn.ReLU())
        self.decode = nn.Conv2d(bottleneck, in_chans, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = F.interpolate(self.encode(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.decode(h)


def _in_chans(model: nn.Module) -> int:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError("FedFed needs a convolutional model (it distils image features); pick another algorithm")
    return int(conv.in_channels)


@register("fedfed")
class FedFed(FLAlgorithm):
    """Distil performance-sensitive features, share them (noised), train on them beside local data.

    Args:
        distill_rounds: rounds of distiller training before the features are shared (FL-bench: 15).
        noise_std: std of the Gaussian noise added to shared features (FL-bench: 0.15).
        bottleneck: channels of the distiller's half-resolution bottleneck.
        reconstruction_weight: weight of the MSE reconstruction term.
        sensitive_weight: weight of the cross-entropy on noised sensitive features.
        shared_weight: weight of the cross-entropy on a batch of shared features after distillation.
    """

    def __init__(self, distill_rounds: int = 15, noise_std: float = 0.15, bottleneck: int = 4,
                 reconstruction_weight: float = 1.0, sensitive_weight: float = 1.0,
                 shared_weight: float = 1.0) -> None:
        self.distill_rounds = distill_rounds
        self.noise_std = noise_std
        self.bottleneck = bottleneck
        self.reconstruction_weight = reconstruction_weight
        self.sensitive_weight = sensitive_weight
        self.shared_weight = shared_weight

    def validate(self) -> None:
        if self.distill_rounds < 1 or self.bottleneck < 1:
            raise ValueError(f"FedFed distill_rounds and bottleneck must be >= 1, got {self.distill_rounds}, "
                             f"{self.bottleneck}")
        for n in ("noise_std", "reconstruction_weight", "sensitive_weight", "shared_weight"):
            if getattr(self, n) < 0:
                raise ValueError(f"FedFed {n} must be >= 0, got {getattr(self, n)}")

    def build_model(self, model: nn.Module) -> nn.Module:
        setattr(model, DISTILLER, Distiller(_in_chans(model), self.bottleneck))
        return model

    # ----------------------------------------------------------------- server
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        self.shared_x_: Tensor | None = None
        self.shared_y_: Tensor | None = None

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        if self.shared_x_ is None:
            return Message()
        return Message(arrays={SHARED: {"x": self.shared_x_, "y": self.shared_y_}})

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        uploads = sorted((u.client_id, u.message.arrays[SHARED]) for u in updates if SHARED in u.message.arrays)
        if uploads:
            self.shared_x_ = torch.cat([a["x"] for _, a in uploads])
            self.shared_y_ = torch.cat([a["y"] for _, a in uploads])
        return combined

    # ----------------------------------------------------------------- client
    def _distilling(self, ctx: ClientContext) -> bool:
        return ctx.round <= self.distill_rounds

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        phases = super().local_phases(ctx)
        if ctx.round == self.distill_rounds:
            phases.append(Phase(epochs=1, kind="observe"))
        return phases

    def sensitive(self, model: nn.Module, x: Tensor) -> Tensor:
        """``x_s = x - x_r``: what the distiller cannot reconstruct."""
        return x - getattr(model, DISTILLER)(x)

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        if self._distilling(ctx):
            robust = getattr(model, DISTILLER)(batch.x)
            noised = batch.x - robust + self.noise_std * torch.randn_like(batch.x)
            return (batch.loss + self.reconstruction_weight * F.mse_loss(robust, batch.x)
                    + self.sensitive_weight * F.cross_entropy(model(noised), batch.y))
        shared = ctx.message.arrays.get(SHARED)
        if not shared or self.shared_weight == 0:
            return batch.loss
        idx = torch.randint(len(shared["y"]), (len(batch.y),), device=shared["y"].device)
        x_sh, y_sh = shared["x"][idx].to(batch.x.device), shared["y"][idx].to(batch.y.device)
        return batch.loss + self.shared_weight * F.cross_entropy(model(x_sh), y_sh)

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        x_s = self.sensitive(model, batch.x) + self.noise_std * torch.randn_like(batch.x)
        ctx.scratch.setdefault("x", []).append(x_s.float())
        ctx.scratch.setdefault("y", []).append(batch.y.long())

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        if "x" not in ctx.scratch:
            return Message()
        return Message(arrays={SHARED: {"x": torch.cat(ctx.scratch["x"]), "y": torch.cat(ctx.scratch["y"])}})
