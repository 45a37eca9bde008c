"""One hospital's half of a distributed run: its data, its model copy, its algorithm hooks, its state.

This is what a SuperNode's ClientApp does with a message, with no Flower type in it: it trains and
evaluates exactly as :class:`fl_core.engine.Engine` does for one client (same seeds, same hooks, same
batch loop), so the weights that come back equal the in-process engine's. The client's persistent
state (control variates, personal layers, a personal model) lives here, on the client's side: it is
kept in the ClientApp's context between messages and checkpointed to the site's own state folder,
and the server never holds it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from algorithms.base import PERSONAL_STATE, ClientContext, ClientUpdate, FLAlgorithm, ServerContext
from algorithms.registry import get_algorithm
from fl_core.config import RunConfig
from fl_core.data import ClientData, list_site, load_site, stratified_split
from fl_core.flower.pooled import split_stats
from fl_core.models import ModelInfo, clone_state, create_model, load_state, model_info
from fl_core.training import PhaseStats, calibrate_batchnorm, derive_seed, evaluate, run_phase

__all__ = ["SHARED_FIELDS", "Site", "site_summary"]

log = logging.getLogger(__name__)

#: RunConfig fields the server sends to every client: what a client needs to train and evaluate.
#: The other sites' folders and the server's run folder are never sent.
SHARED_FIELDS = ("algorithm", "algorithm_params", "model", "global_pool", "image_size", "in_chans",
                 "local_epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "seed",
                 "val_fraction", "test_fraction", "bn_calibration", "num_threads", "device")
_KEEP_STATE_FILES = 3


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
    """A client's runtime for one message: built from its node config and the server's settings.

    Attributes:
        cfg: the run's shared settings with this site's own folder as the only data dir.
        index: the site's position in the federation (seeds and splits derive from it).
        classes: the federation's label space, as the server sent it.
        state_dir: the site's own folder for checkpoints of its state and its decoded-image cache.
    """

    cfg: RunConfig
    index: int
    classes: tuple[str, ...]
    state_dir: Path

    @classmethod
    def create(cls, site_dir: str, index: int, shared: dict[str, Any], classes: list[str],
               state_dir: str) -> Site:
        cfg = RunConfig(data_dirs=(site_dir,), progress=False, **shared)
        return cls(cfg, index, tuple(classes), Path(state_dir))

    def __post_init__(self) -> None:
        torch.set_num_threads(self.cfg.num_threads)
        self.device = torch.device(self.cfg.device)
        self.algo: FLAlgorithm = get_algorithm(self.cfg.algorithm, **self.cfg.algorithm_params)
        torch.manual_seed(derive_seed(self.cfg.seed, 0))  # the engine's architecture and init seed
        self.model = create_model(self.cfg.model, len(self.classes), self.cfg.in_chans,
                                  self.cfg.global_pool).to(self.device)
        self.eval_model = copy.deepcopy(self.model)
        self.info: ModelInfo = model_info(self.model, len(self.classes))
        self.local_keys = self.algo.local_keys(self.info)
        self.data = self._load_data()
        self.train_split = self.data.train.to(self.device)

    # ------------------------------------------------------------------ data (decoded once per run)
    def _load_data(self) -> ClientData:
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
        tmp = cache.with_suffix(".tmp")
        torch.save(data, tmp)
        os.replace(tmp, cache)
        return data

    def _frozen(self, state: dict[str, torch.Tensor]) -> nn.Module:
        m = copy.deepcopy(self.eval_model)
        load_state(m, state)
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        return m

    # ------------------------------------------------------------------ training (Engine.train_client)
    def train(self, rnd: int, global_state: dict[str, torch.Tensor], payload: dict[str, Any],
              saved: dict[str, Any], server: ServerContext) -> tuple[ClientUpdate, PhaseStats, dict[str, Any]]:
        """One local round; returns the update, its statistics and the client's new saved state.

        Args:
            saved: ``{"state": <the algorithm's client dict>, "local": <local keys' weights>}`` as the
                previous round left it (empty on the first round).
        """
        cfg, algo, cid = self.cfg, self.algo, self.index
        state: dict[str, Any] = _to(saved.get("state", {}), self.device)
        local: dict[str, torch.Tensor] = _to(saved.get("local", {}), self.device)
        torch.manual_seed(derive_seed(cfg.seed, rnd, cid, 1))
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, rnd, cid, 2))
        received = {**_to(global_state, self.device), **local}
        load_state(self.model, received)
        ctx = ClientContext(
            client_id=cid, round=rnd, info=self.info, global_state=received, payload=_to(payload, self.device),
            state=state, num_samples=len(self.train_split),
            label_counts=self.data.label_counts(len(self.classes)), local_epochs=cfg.local_epochs,
            lr=cfg.lr, make_model=self._frozen,
        )
        algo.begin_client(ctx)
        stats = PhaseStats()
        for phase in algo.local_phases(ctx):
            if phase.model == "personal":
                personal = self._frozen(ctx.state.get(PERSONAL_STATE, received))
                personal.requires_grad_(True)
                stats.add(run_phase(personal, self.train_split, phase, algo, ctx, cfg, gen))
                ctx.state[PERSONAL_STATE] = clone_state(personal.state_dict())
            else:
                stats.add(run_phase(self.model, self.train_split, phase, algo, ctx, cfg, gen))
        upload = algo.end_client(ctx, self.model)
        trained = self.model.state_dict()
        if self.local_keys:
            local = {k: trained[k].detach().clone() for k in self.local_keys}
        shared = {k: v.detach().clone() for k, v in trained.items() if k not in self.local_keys}
        update = ClientUpdate(cid, shared, len(self.train_split), upload, stats.mean_loss)
        return update, stats, {"state": ctx.state, "local": local}

    # ------------------------------------------------------------------ evaluation (Engine.evaluate_round)
    def evaluate(self, global_state: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict[str, Any]:
        """The global and (when this client has one) personalised model on the val and test splits.

        Returns per model and split the client's own metrics and the sufficient statistics for the
        pooled ones (:mod:`fl_core.flower.pooled`): no example-level output leaves the client.
        """
        glob = _to(global_state, self.device)
        out = {"global": self._eval(glob, calibrate=self.cfg.bn_calibration == "local")}
        state, local = saved.get("state", {}), saved.get("local", {})
        if self.local_keys or PERSONAL_STATE in state:
            pers = self.algo.personalised_state(glob, _to(state, self.device), _to(local, self.device))
            out["personal"] = self._eval(pers)
        return out

    def _eval(self, state: dict[str, torch.Tensor], calibrate: bool = False) -> dict[str, Any]:
        load_state(self.eval_model, state)
        if calibrate:
            calibrate_batchnorm(self.eval_model, self.train_split)
        found = {}
        for name, split in (("test", self.data.test), ("val", self.data.val)):
            split = split.to(self.device)
            metrics, logits = evaluate(self.eval_model, split)
            found[name] = {"metrics": metrics,
                           "stats": split_stats(split.y.cpu().numpy(), logits, len(self.classes))}
        return found

    # ------------------------------------------------------------------ client-side checkpoints
    def save_state(self, rnd: int, run_key: str, saved: dict[str, Any]) -> None:
        """Write the client's state after round ``rnd`` to its own folder (for a restart of the run)."""
        folder = self.state_dir / f"run-{run_key}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"round-{rnd:05d}.pt"
        tmp = target.with_suffix(".tmp")
        torch.save(_to(saved, torch.device("cpu")), tmp)
        os.replace(tmp, target)
        for old in sorted(folder.glob("round-*.pt"))[:-_KEEP_STATE_FILES]:
            old.unlink()

    def load_state(self, resume_round: int, run_key: str) -> dict[str, Any]:
        """The state this client saved after its last trained round <= ``resume_round`` ({} if none)."""
        folder = self.state_dir / f"run-{run_key}"
        found = [p for p in sorted(folder.glob("round-*.pt")) if int(p.stem.split("-")[1]) <= resume_round]
        if not found:
            return {}
        return torch.load(found[-1], map_location="cpu", weights_only=False)


def _to(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to(v, device) for v in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj).to(device)
    return obj
