"""One hospital's half of a distributed run: the contract's :class:`fl_core.client.SiteClient`, built
in the SuperNode's process from the site's own folder and the settings the server sent.

Nothing here trains or evaluates: :class:`~fl_core.client.SiteClient` does, exactly as for the
in-process engine (same seeds, same hooks, same batch loop), so the weights that come back equal
the in-process engine's. What this module adds is what a separate process needs: the algorithm
instance rebuilt from its class path and hyper-parameters (as ``fl_core.transport.fresh_instance``
does), the model built as the engine builds it, the site's images decoded once per run into a cache
in its own state folder, the sufficient statistics of its evaluation (no example-level output
leaves the site), and the client's state restored between messages.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from algorithms.api import FLAlgorithm
from fl_core.client import SiteClient, Workspace
from fl_core.config import RunConfig
from fl_core.data import ClientData, list_site, load_site, stratified_split
from fl_core.flower.pooled import split_stats
from fl_core.metrics import classification_metrics
from fl_core.models import create_model, model_info
from fl_core.training import derive_seed

__all__ = ["SHARED_FIELDS", "Site", "algorithm_ref", "build_algorithm", "site_summary"]

log = logging.getLogger(__name__)

#: RunConfig fields the server sends to every client: what a client needs to train and evaluate.
#: The other sites' folders and the server's run folder are never sent.
SHARED_FIELDS = ("algorithm", "algorithm_params", "model", "global_pool", "image_size", "in_chans",
                 "local_epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "seed",
                 "val_fraction", "test_fraction", "bn_calibration", "num_threads", "device")


def algorithm_ref(algorithm: FLAlgorithm) -> dict[str, Any]:
    """What another process needs to build the same algorithm: its class path and hyper-parameters."""
    cls = type(algorithm)
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "params": algorithm.get_params()}


def build_algorithm(ref: dict[str, Any]) -> FLAlgorithm:
    """A fresh instance from :func:`algorithm_ref`'s output (the site's installed copy of the module)."""
    module, _, name = str(ref["class"]).partition(":")
    cls = getattr(importlib.import_module(module), name)
    algo = cls(**ref["params"])
    if not isinstance(algo, FLAlgorithm):
        raise TypeError(f"{ref['class']} is not an FLAlgorithm")
    return algo


def site_summary(site_dir: str, val_fraction: float, test_fraction: float) -> dict[str, Any]:
    """What a client tells the server before a run: its folder name, class names and training-split size.

    The size follows from the class counts alone (``stratified_split`` takes a fixed share of each
    class), so no image is decoded and no label order is needed yet.
    """
    items = list_site(site_dir)
    _, counts = np.unique([c for _, c in items], return_counts=True)
    y = np.repeat(np.arange(len(counts)), counts)
    train, _, _ = stratified_split(y, val_fraction, test_fraction, 0)
    return {"name": Path(site_dir).name, "classes": sorted({c for _, c in items}), "train_size": len(train)}


@dataclass
class Site:
    """A client's runtime for one message, built from its node config and the server's settings.

    Attributes:
        cfg: the run's shared settings with this site's own folder as the only data dir.
        index: the site's position in the federation (seeds and splits derive from it).
        classes: the federation's label space, as the server sent it.
        state_dir: the site's own folder (image cache, state checkpoints).
        run_key: the server run's fingerprint: this site's checkpoints of that run live under it.
        algorithm: :func:`algorithm_ref` of the run's algorithm.
    """

    cfg: RunConfig
    index: int
    classes: tuple[str, ...]
    state_dir: Path
    run_key: str
    algorithm: dict[str, Any]

    @classmethod
    def create(cls, site_dir: str, index: int, shared: dict[str, Any], classes: list[str], state_dir: str,
               run_key: str, algorithm: dict[str, Any]) -> Site:
        cfg = RunConfig(data_dirs=(site_dir,), progress=False, **shared)
        return cls(cfg, index, tuple(classes), Path(state_dir), run_key, algorithm)

    def __post_init__(self) -> None:
        torch.set_num_threads(self.cfg.num_threads)
        algo = build_algorithm(self.algorithm)
        torch.manual_seed(derive_seed(self.cfg.seed, 0))  # the engine's architecture and init seed
        model = create_model(self.cfg.model, len(self.classes), self.cfg.in_chans, self.cfg.global_pool)
        template = algo.build_model(model).to(torch.device(self.cfg.device))
        info = model_info(template, len(self.classes))
        self.client = SiteClient(self.index, self._load_data(), len(self.classes), algo, self.cfg, info,
                                 Workspace(template), self.state_dir / f"run-{self.run_key}")

    def _load_data(self) -> ClientData:
        """The site's splits, decoded once per run and cached in its state folder."""
        c = self.cfg
        items = list_site(c.data_dirs[0])
        key = json.dumps([c.data_dirs[0], self.classes, self.index, c.image_size, c.in_chans, c.val_fraction,
                          c.test_fraction, c.seed, [(str(p), os.path.getmtime(p)) for p, _ in items]])
        cache = self.state_dir / f"data-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"
        if cache.exists():
            return torch.load(cache, weights_only=False)
        data = load_site(c.data_dirs[0], self.classes, self.index, c.image_size, c.in_chans,
                         c.val_fraction, c.test_fraction, c.seed, items)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        torch.save(data, tmp)
        os.replace(tmp, cache)
        return data

    def evaluate(self, global_state: dict[str, torch.Tensor], personal: bool, calibrate: bool) -> dict[str, Any]:
        """The client's metrics and pooled-metric counts, ``[model][split]`` (never the logits)."""
        groups = self.client.evaluate(global_state, personal, calibrate).arrays
        out: dict[str, dict[str, Any]] = {}
        for name, g in groups.items():
            model, split = name.split("/")
            y, logits = g["y"].numpy(), g["logits"].numpy()
            out.setdefault(model, {})[split] = {"metrics": classification_metrics(y, logits),
                                                "stats": split_stats(y, logits, len(self.classes))}
        return out
