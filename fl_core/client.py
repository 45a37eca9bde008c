"""One hospital's side of a federation: its data, its algorithm instance, and its state.

A :class:`SiteClient` is everything a client process would hold (a Flower ClientApp holds the same):
its splits, its own algorithm instance, its persistent state (control variates, a personal model,
its local keys) and the files that state is checkpointed to. The server reaches it only through
message-shaped calls (:meth:`fit`, :meth:`evaluate`, or their byte forms), so the server never
holds a client's state.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from algorithms.aggregation import StateDict
from algorithms.api import (
    PERSONAL_STATE,
    ClientContext,
    ClientUpdate,
    EvalContext,
    FLAlgorithm,
    Message,
    ModelInfo,
)
from algorithms.wire import pack, pack_state, unpack, unpack_state
from fl_core.config import RunConfig
from fl_core.data import ClientData
from fl_core.models import clone_state, load_state
from fl_core.training import PhaseStats, calibrate_batchnorm, derive_seed, predict, run_phase

__all__ = ["FitReply", "SiteClient", "Workspace", "pack_reply", "unpack_reply"]

log = logging.getLogger(__name__)

_LOCAL = "_local_weights"
_META = ("_fingerprint", "_round")


class Workspace:
    """The model objects a process trains and evaluates in (shared by the clients of one process)."""

    def __init__(self, template: nn.Module) -> None:
        self.model = copy.deepcopy(template)
        self.eval_model = copy.deepcopy(template)

    def frozen(self, state: StateDict) -> nn.Module:
        """An eval-mode, no-grad model holding ``state``."""
        m = copy.deepcopy(self.eval_model)
        load_state(m, state)
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        return m

    def trainable(self, state: StateDict) -> nn.Module:
        """A train-mode copy holding ``state`` (for models trained on the server)."""
        m = copy.deepcopy(self.model)
        load_state(m, state)
        m.train()
        return m


@dataclass
class FitReply:
    """A client's answer to one round: its update, its training totals, whether it keeps a personal model."""

    update: ClientUpdate
    stats: PhaseStats
    has_personal: bool


def pack_reply(reply: FitReply) -> bytes:
    """Bytes of a :class:`FitReply`."""
    u, s = reply.update, reply.stats
    head = {"client_id": u.client_id, "num_samples": u.num_samples, "train_loss": float(u.train_loss),
            "loss_sum": s.loss_sum, "images": s.images, "steps": s.steps, "seconds": s.seconds,
            "has_personal": reply.has_personal}
    return pack(u.weights, u.message, head, where=f"client {u.client_id}'s update")


def unpack_reply(data: bytes, device: torch.device | str = "cpu") -> FitReply:
    """Inverse of :func:`pack_reply`."""
    weights, message, h = unpack(data, device)
    update = ClientUpdate(int(h["client_id"]), weights, int(h["num_samples"]), message, float(h["train_loss"]))
    stats = PhaseStats(float(h["loss_sum"]), int(h["images"]), int(h["steps"]), float(h["seconds"]))
    return FitReply(update, stats, bool(h["has_personal"]))


class SiteClient:
    """A client of the federation, holding its own state.

    Args:
        cid: the client's index.
        data: its splits.
        num_classes: size of the label space.
        algorithm: this client's algorithm instance (the server's own only in the direct, in-process mode).
        cfg: the run configuration.
        info: the model's key roles.
        workspace: model objects to train and evaluate in.
        state_dir: where this client checkpoints its state (``None``: not checkpointed).
    """

    def __init__(self, cid: int, data: ClientData, num_classes: int, algorithm: FLAlgorithm, cfg: RunConfig,
                 info: ModelInfo, workspace: Workspace, state_dir: Path | None = None) -> None:
        device = torch.device(cfg.device)
        self.cid, self.name, self.algo, self.cfg, self.info = cid, data.name, algorithm, cfg, info
        self.workspace = workspace
        self.local_keys = algorithm.local_keys(info)
        self.train, self.val, self.test = data.train.to(device), data.val.to(device), data.test.to(device)
        self.label_counts = data.label_counts(num_classes)
        self.state: dict[str, Any] = {}
        self.local_weights: StateDict = {}
        self.state_dir = state_dir
        self.adapts = False  # whether the algorithm adapts the personalised model before evaluating it

    @property
    def has_personal(self) -> bool:
        """Whether this client evaluates a model of its own (local keys or a personal model)."""
        return (bool(self.local_keys) or PERSONAL_STATE in self.state or self.adapts
                or self.algo.primary_model == "personal")

    # ------------------------------------------------------------------ training
    def fit(self, rnd: int, weights: StateDict, message: Message, stage: int = 0) -> FitReply:
        """One local round from the server's ``weights`` and ``message``; the update goes back."""
        cfg, algo = self.cfg, self.algo
        tag = (1,) if stage == 0 else (1, stage)
        torch.manual_seed(derive_seed(cfg.seed, rnd, self.cid, *tag))
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, rnd, self.cid, 2, *tag[1:]))
        received = {**weights, **self.local_weights}
        model = self.workspace.model
        load_state(model, received)
        ctx = ClientContext(
            client_id=self.cid, round=rnd, info=self.info, global_state=received, message=message,
            state=self.state, num_samples=len(self.train), label_counts=self.label_counts,
            local_epochs=cfg.local_epochs, lr=cfg.lr, make_model=self.workspace.frozen, stage=stage,
        )
        algo.begin_client(ctx)
        stats = PhaseStats()
        for phase in algo.local_phases(ctx):
            if phase.model == "personal":
                personal = self.workspace.frozen(ctx.state.get(PERSONAL_STATE, received))
                personal.requires_grad_(True)
                stats.add(run_phase(personal, self.train, phase, algo, ctx, cfg, gen))
                algo.after_phase(ctx, personal)
                if phase.kind == "train":  # a pass that only observes creates no personal model
                    ctx.state[PERSONAL_STATE] = clone_state(personal.state_dict())
            else:
                stats.add(run_phase(model, self.train, phase, algo, ctx, cfg, gen))
                algo.after_phase(ctx, model)
        upload = algo.end_client(ctx, model)
        self.adapts = bool(algo.adapt_phases(copy.copy(ctx)))
        trained = model.state_dict()
        if self.local_keys:
            self.local_weights = {k: trained[k].detach().clone() for k in self.local_keys}
        shared = {k: v.detach().clone() for k, v in trained.items() if k not in self.local_keys}
        update = ClientUpdate(self.cid, shared, len(self.train), upload, stats.mean_loss)
        self.save(rnd)
        return FitReply(update, stats, self.has_personal)

    def fit_bytes(self, data: bytes) -> bytes:
        """:meth:`fit` with the instruction and the reply as bytes (what a separate process receives)."""
        weights, message, head = unpack(data, self.cfg.device)
        return pack_reply(self.fit(int(head["round"]), weights, message, int(head.get("stage", 0))))

    # ------------------------------------------------------------------ evaluation
    def _logits(self, kind: str, global_state: StateDict, state: StateDict,
                calibrate: bool) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        model = self.workspace.eval_model
        load_state(model, state)
        if calibrate:
            calibrate_batchnorm(model, self.train)
        ectx = EvalContext(self.cid, self.info, kind, global_state, self.state, self.workspace.frozen)  # type: ignore[arg-type]
        fn = (lambda m, x: self.algo.evaluation_logits(ectx, m, x))
        return {"y": self.test.y.cpu(), "logits": predict(model, self.test, fn)}, {
            "y": self.val.y.cpu(), "logits": predict(model, self.val, fn)}

    def evaluate(self, global_state: StateDict, personal: bool, calibrate: bool) -> Message:
        """Labels and logits of the global (and personalised) model on this client's test and val splits.

        Groups are named ``"<model>/<split>"``; the server computes the metrics from them.
        """
        out: dict[str, dict[str, torch.Tensor]] = {}
        out["global/test"], out["global/val"] = self._logits("global", global_state, global_state, calibrate)
        if personal:
            pers = self._adapted(self.algo.personalised_state(global_state, self.state, self.local_weights))
            out["personal/test"], out["personal/val"] = self._logits("personal", global_state, pers, False)
        return Message(arrays=out)

    def _adapted(self, start: StateDict) -> StateDict:
        """``start`` after the algorithm's :meth:`~FLAlgorithm.adapt_phases` on this client's training
        split (``start`` itself when there are none). Seeded by client only, so every evaluation of the
        same weights gives the same adapted model; nothing of it persists."""
        cfg, algo = self.cfg, self.algo
        ctx = ClientContext(
            client_id=self.cid, round=0, info=self.info, global_state=start, message=Message(),
            state=copy.deepcopy(self.state), num_samples=len(self.train), label_counts=self.label_counts,
            local_epochs=cfg.local_epochs, lr=cfg.lr, make_model=self.workspace.frozen,
        )
        phases = algo.adapt_phases(ctx)
        if not phases:
            return start
        torch.manual_seed(derive_seed(cfg.seed, 0, self.cid, 3))
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, 0, self.cid, 4))
        model = self.workspace.trainable(start)
        for phase in phases:
            run_phase(model, self.train, phase, algo, ctx, cfg, gen)
        return clone_state(model.state_dict())

    def evaluate_bytes(self, data: bytes) -> bytes:
        """:meth:`evaluate` with request and reply as bytes."""
        weights, _, head = unpack(data, self.cfg.device)
        reply = self.evaluate(weights, bool(head["personal"]), bool(head["calibrate"]))
        return pack({}, reply, {"client_id": self.cid}, where=f"client {self.cid}'s evaluation")

    # ------------------------------------------------------------------ checkpoint (client side)
    def _file(self, rnd: int) -> Path:
        assert self.state_dir is not None
        return self.state_dir / f"round_{rnd:05d}.state"

    def save(self, rnd: int) -> None:
        """Write this client's state after round ``rnd`` (message-shaped bytes); keep the last two."""
        if self.state_dir is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = pack_state({**self.state, _LOCAL: self.local_weights, "_fingerprint": self.cfg.fingerprint(),
                           "_round": rnd}, where=f"client {self.cid}'s state")
        tmp = self._file(rnd).with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(self._file(rnd))
        for old in sorted(self.state_dir.glob("round_*.state"))[:-2]:
            old.unlink()

    def clear_saved(self) -> None:
        """Delete this client's saved states (a run that starts over)."""
        if self.state_dir is not None and self.state_dir.is_dir():
            for old in self.state_dir.glob("round_*.state"):
                old.unlink()

    def load(self, rnd: int) -> None:
        """Restore the state this client had after the server's round ``rnd`` (latest file at or before it)."""
        self.state, self.local_weights = {}, {}
        if self.state_dir is None or not self.state_dir.is_dir():
            return
        files = [p for p in sorted(self.state_dir.glob("round_*.state")) if int(p.stem.split("_")[1]) <= rnd]
        if not files:
            return
        state = unpack_state(files[-1].read_bytes(), self.cfg.device)
        if state.get("_fingerprint") != self.cfg.fingerprint():
            raise ValueError(f"{files[-1]} belongs to a run with another configuration; use another --out folder "
                             "or start over with resume=False")
        self.local_weights = state.pop(_LOCAL)
        for k in _META:
            state.pop(k, None)
        self.state = state
