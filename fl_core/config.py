"""The run configuration: one frozen dataclass, validated before anything runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["BN_CALIBRATIONS", "ENGINES", "GLOBAL_POOLS", "METRICS", "RunConfig"]

#: Metrics the engine computes and early stopping may watch.
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss")
#: timm's global pooling choices (``SelectAdaptivePool2d``), for the tiny CNN and every timm model.
GLOBAL_POOLS = ("avg", "max", "avgmax", "catavgmax")
#: How the global model's BatchNorm statistics are set before a client evaluates it (see ``bn_calibration``).
BN_CALIBRATIONS = ("none", "local")
#: Which runtime trains: all clients in this process, or Flower (``fl_core.flower``) with its
#: simulation runtime or as a SuperLink and one SuperNode process per site.
ENGINES = ("inprocess", "flower-simulation", "flower-deployment")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result (and nothing that does not, except ``progress``).

    Attributes:
        data_dirs: one prepared folder per client, each holding ``<class_name>/<image>`` files.
        algorithm: registry name (``algorithms.registry.list_algorithms()``).
        algorithm_params: hyper-parameters overriding the algorithm's paper defaults.
        model: ``"tiny_cnn"`` or a timm model name.
        global_pool: timm's pooling before the classifier (:data:`GLOBAL_POOLS`);
            ``"catavgmax"`` keeps small lesions visible (see ``TinyCNN``).
        image_size: images are resized to ``image_size x image_size``.
        in_chans: model input channels; 1-channel images are repeated to 3 and vice versa.
        rounds: communication rounds.
        local_epochs: epochs over a client's training split per round.
        batch_size: local mini-batch size.
        lr, optimizer, momentum, weight_decay: client optimizer (``"sgd"`` or ``"adam"``).
        fraction_fit: share of clients sampled per round.
        min_clients: at least this many clients are sampled (capped at the federation size).
        seed: every random choice (splits, init, sampling, shuffling) derives from it.
        val_fraction, test_fraction: per-client, per-class split shares.
        early_stopping_patience: stop after this many rounds without a better validation metric;
            0 disables early stopping.
        early_stopping_metric: one of :data:`METRICS` (``loss`` is minimised, the others maximised).
        bn_calibration: ``"none"`` evaluates the global model with its own BatchNorm statistics (the
            clients' average under FedAvg); ``"local"`` lets each client re-estimate them on its own
            training images before it evaluates the global model (AdaBN), as a hospital receiving the
            model would. Training and the shared weights are the same either way.
        num_threads: torch CPU threads.
        device: ``"cpu"`` or ``"cuda"``.
        out_dir: reports and checkpoints go here; an existing checkpoint there is resumed.
        resume: continue from ``out_dir``'s checkpoint when its configuration matches.
        progress: show a per-round progress bar.
        engine: one of :data:`ENGINES`. Every engine runs the same algorithm hooks with the same
            seeds and writes the same report files; a checkpoint resumes only under its own engine.
        shares: what data-derived content beyond model weights the algorithm's clients upload (its
            catalog entry's ``shares``: "statistics", "features", ...), filled by the caller that
            resolves the algorithm's name (``fedagentbench.training``); ``fl_core`` never reads the
            catalog. Reported in ``summary.json`` as a privacy cost; it does not change training.
    """

    data_dirs: tuple[str, ...]
    algorithm: str = "fedavg"
    algorithm_params: dict[str, Any] = field(default_factory=dict)
    model: str = "tiny_cnn"
    global_pool: Literal["avg", "max", "avgmax", "catavgmax"] = "avg"
    image_size: int = 64
    in_chans: int = 3
    rounds: int = 5
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    fraction_fit: float = 1.0
    min_clients: int = 1
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.2
    early_stopping_patience: int = 0
    early_stopping_metric: str = "balanced_accuracy"
    bn_calibration: Literal["none", "local"] = "none"
    num_threads: int = 1
    device: str = "cpu"
    out_dir: str = "runs/train"
    resume: bool = True
    progress: bool = True
    engine: Literal["inprocess", "flower-simulation", "flower-deployment"] = "inprocess"
    shares: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dirs", tuple(str(d) for d in self.data_dirs))
        object.__setattr__(self, "algorithm_params", dict(self.algorithm_params))
        object.__setattr__(self, "out_dir", str(self.out_dir))
        object.__setattr__(self, "shares", tuple(str(x) for x in self.shares))
        errors = list(self._errors())
        if errors:
            raise ValueError("invalid RunConfig: " + "; ".join(errors))

    def _errors(self) -> list[str]:
        e: list[str] = []
        if not self.data_dirs:
            e.append("data_dirs is empty: give one prepared folder per client")
        for d in self.data_dirs:
            if not Path(d).is_dir():
                e.append(f"data dir {d!r} does not exist or is not a folder")
        if len(set(self.data_dirs)) != len(self.data_dirs):
            e.append("data_dirs lists the same folder twice; each client needs its own folder")
        for name in ("image_size", "rounds", "local_epochs", "batch_size", "min_clients", "num_threads"):
            if getattr(self, name) < 1:
                e.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.in_chans not in (1, 3):
            e.append(f"in_chans must be 1 or 3, got {self.in_chans}")
        if not self.lr > 0:
            e.append(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            e.append(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            e.append(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            e.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.fraction_fit <= 1:
            e.append(f"fraction_fit must be in (0, 1], got {self.fraction_fit}")
        if not (0 <= self.val_fraction < 1 and 0 < self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            e.append(f"val_fraction ({self.val_fraction}) and test_fraction ({self.test_fraction}) must be "
                     "in [0, 1), test > 0, and sum to less than 1 so that some data is left for training")
        if self.early_stopping_patience < 0:
            e.append("early_stopping_patience must be >= 0 (0 disables early stopping)")
        if self.global_pool not in GLOBAL_POOLS:
            e.append(f"global_pool must be one of {GLOBAL_POOLS}, got {self.global_pool!r}")
        if self.bn_calibration not in BN_CALIBRATIONS:
            e.append(f"bn_calibration must be {' or '.join(map(repr, BN_CALIBRATIONS))}, got {self.bn_calibration!r}")
        if self.early_stopping_metric not in METRICS:
            e.append(f"early_stopping_metric must be one of {METRICS}, got {self.early_stopping_metric!r}")
        if self.engine not in ENGINES:
            e.append(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            e.append(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        return e

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        d = dataclasses.asdict(self)
        d["data_dirs"] = list(self.data_dirs)
        d["shares"] = list(self.shares)
        return d

    def fingerprint(self) -> str:
        """Hash of the fields that determine the result (a checkpoint resumes only if it matches)."""
        d = self.to_dict()
        for k in ("out_dir", "resume", "progress", "num_threads", "shares"):
            d.pop(k)
        if d["engine"] == "inprocess":  # the fingerprint of every run from before engines existed
            d.pop("engine")
        d["data_dirs"] = [str(Path(p).resolve()) for p in self.data_dirs]
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)
