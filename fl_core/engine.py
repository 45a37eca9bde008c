"""The in-process FL engine: it owns the round and client loops and calls the algorithm's hooks.

Every random stream (model init, client sampling, batch order, dropout) is seeded from
``(seed, round, client)`` rather than carried along, and the complete state after each round
(global and local weights, client states, algorithm state, history) is checkpointed. A run killed
at any point and started again with the same configuration therefore ends with exactly the result
of an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from algorithms.aggregation import StateDict
from algorithms.base import PERSONAL_STATE, ClientContext, ClientUpdate, FLAlgorithm, ServerContext
from algorithms.registry import get_algorithm
from fl_core import checkpoint, report
from fl_core.config import RunConfig
from fl_core.data import FederatedData, Split, load_federation
from fl_core.metrics import classification_metrics, mean_metrics
from fl_core.models import ModelInfo, clone_state, create_model, load_state, model_info
from fl_core.result import RunResult
from fl_core.training import PhaseStats, calibrate_batchnorm, derive_seed, evaluate, run_phase

__all__ = ["CRASH_ENV", "Engine", "sample_clients"]

log = logging.getLogger(__name__)

#: Test hook: when set to ``k``, the process exits hard right after round ``k``'s checkpoint.
CRASH_ENV = "FEDAGENTBENCH_CRASH_AFTER_ROUND"


def sample_clients(num_clients: int, fraction: float, minimum: int, seed: int, rnd: int) -> list[int]:
    """Clients trained in round ``rnd``: ``max(minimum, ceil(fraction * n))`` of them, seeded."""
    k = min(num_clients, max(minimum, math.ceil(fraction * num_clients)))
    if k == num_clients:
        return list(range(num_clients))
    rng = np.random.default_rng(derive_seed(seed, rnd, 7919))
    return sorted(int(i) for i in rng.choice(num_clients, size=k, replace=False))


class Engine:
    """One FL run over loaded data. Use :func:`fl_core.run` unless you already hold the data."""

    def __init__(self, cfg: RunConfig, data: FederatedData, algorithm: FLAlgorithm | None = None) -> None:
        self.cfg = cfg
        self.data = data
        self.algo = algorithm or get_algorithm(cfg.algorithm, **cfg.algorithm_params)
        self.device = torch.device(cfg.device)
        torch.manual_seed(derive_seed(cfg.seed, 0))
        self.model = create_model(cfg.model, data.num_classes, cfg.in_chans, cfg.global_pool).to(self.device)
        self.eval_model = copy.deepcopy(self.model)
        self.info: ModelInfo = model_info(self.model, data.num_classes)
        self.local_keys = self.algo.local_keys(self.info)
        self.splits = [(c.train.to(self.device), c.val.to(self.device), c.test.to(self.device))
                       for c in data.clients]
        self.sizes = tuple(len(c.train) for c in data.clients)
        # run state, all checkpointed
        self.global_state: StateDict = clone_state(self.model.state_dict())
        self.local_states: dict[int, StateDict] = {}
        self.client_states: dict[int, dict[str, Any]] = {i: {} for i in range(len(data.clients))}
        self.history: list[dict[str, Any]] = []
        self.best = {"round": 0, "value": None, "stale": 0, "stopped": False}

    # ------------------------------------------------------------------ helpers
    def _server(self, rnd: int, sampled: tuple[int, ...] = ()) -> ServerContext:
        return ServerContext(rnd, self.info, len(self.data.clients), sampled, self.sizes)

    def _frozen(self, state: StateDict) -> nn.Module:
        m = copy.deepcopy(self.eval_model)
        load_state(m, state)
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        return m

    def _has_personal(self) -> bool:
        return bool(self.local_keys) or any(PERSONAL_STATE in s for s in self.client_states.values())

    # ------------------------------------------------------------------ client
    def train_client(self, cid: int, rnd: int, server: ServerContext) -> tuple[ClientUpdate, PhaseStats]:
        """One client's local round: hooks around :func:`run_phase`, returns its update."""
        cfg, algo = self.cfg, self.algo
        torch.manual_seed(derive_seed(cfg.seed, rnd, cid, 1))
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, rnd, cid, 2))
        received = {**self.global_state, **self.local_states.get(cid, {})}
        load_state(self.model, received)
        train = self.splits[cid][0]
        ctx = ClientContext(
            client_id=cid, round=rnd, info=self.info, global_state=received,
            payload=algo.configure_client(cid, server), state=self.client_states[cid],
            num_samples=len(train), label_counts=self.data.clients[cid].label_counts(self.data.num_classes),
            local_epochs=cfg.local_epochs, lr=cfg.lr, make_model=self._frozen,
        )
        algo.begin_client(ctx)
        stats = PhaseStats()
        for phase in algo.local_phases(ctx):
            if phase.model == "personal":
                personal = self._frozen(ctx.state.get(PERSONAL_STATE, received))
                personal.requires_grad_(True)
                stats.add(run_phase(personal, train, phase, algo, ctx, cfg, gen))
                ctx.state[PERSONAL_STATE] = clone_state(personal.state_dict())
            else:
                stats.add(run_phase(self.model, train, phase, algo, ctx, cfg, gen))
        upload = algo.end_client(ctx, self.model)
        trained = self.model.state_dict()
        if self.local_keys:
            self.local_states[cid] = {k: trained[k].detach().clone() for k in self.local_keys}
        shared = {k: v.detach().clone() for k, v in trained.items() if k not in self.local_keys}
        return ClientUpdate(cid, shared, len(train), upload, stats.mean_loss), stats

    # ------------------------------------------------------------------ evaluation
    def _eval_states(self, states: list[StateDict], calibrate: bool = False) -> dict[str, dict[str, Any]]:
        """Each client's state on its test and val splits (one load, and one calibration, per client)."""
        found: dict[str, tuple[list, list, list]] = {"test": ([], [], []), "val": ([], [], [])}
        for cid, state in enumerate(states):
            load_state(self.eval_model, state)
            if calibrate:
                calibrate_batchnorm(self.eval_model, self.splits[cid][0])
            for name, index in (("test", 2), ("val", 1)):
                split: Split = self.splits[cid][index]
                m, lg = evaluate(self.eval_model, split)
                per_client, ys, logits = found[name]
                per_client.append(m)
                ys.append(split.y.cpu().numpy())
                logits.append(lg)
        return {name: {"overall": classification_metrics(np.concatenate(ys), np.concatenate(logits)),
                       "client_mean": mean_metrics(per_client), "clients": per_client}
                for name, (per_client, ys, logits) in found.items()}

    def evaluate_round(self) -> dict[str, Any]:
        """Global and personalised models on every client's val and test split."""
        n = len(self.data.clients)
        out: dict[str, Any] = {"global": self._eval_states([self.global_state] * n,
                                                           calibrate=self.cfg.bn_calibration == "local")}
        if self._has_personal():
            pers = [self.algo.personalised_state(self.global_state, self.client_states[i],
                                                 self.local_states.get(i, {})) for i in range(n)]
            out["personal"] = self._eval_states(pers)
        else:
            out["personal"] = out["global"]
        return out

    def _early_stop(self, rnd: int, value: float) -> bool:
        better = self.best["value"] is None or (
            value < self.best["value"] if self.cfg.early_stopping_metric == "loss" else value > self.best["value"])
        if not math.isnan(value) and better:
            self.best.update(round=rnd, value=value, stale=0)
        else:
            self.best["stale"] += 1
        patience = self.cfg.early_stopping_patience
        return patience > 0 and self.best["stale"] >= patience

    # ------------------------------------------------------------------ checkpoint state
    def state(self, rnd: int) -> dict[str, Any]:
        return {
            "fingerprint": self.cfg.fingerprint(), "round": rnd, "global_state": self.global_state,
            "local_states": self.local_states, "client_states": self.client_states,
            "algorithm_state": self.algo.get_state(), "history": self.history, "best": self.best,
        }

    def load(self, ckpt: dict[str, Any]) -> int:
        dev = self.device
        self.global_state = {k: v.to(dev) for k, v in ckpt["global_state"].items()}
        self.local_states = {int(c): {k: v.to(dev) for k, v in s.items()} for c, s in ckpt["local_states"].items()}
        self.client_states = checkpoint.to_device(ckpt["client_states"], dev)
        self.algo.set_state(checkpoint.to_device(ckpt["algorithm_state"], dev))
        self.history = ckpt["history"]
        self.best = ckpt["best"]
        return int(ckpt["round"])

    # ------------------------------------------------------------------ the loop
    def run(self) -> RunResult:
        """Train (or resume) to the configured number of rounds and write the reports."""
        cfg, algo = self.cfg, self.algo
        t0 = time.perf_counter()
        torch.set_num_threads(cfg.num_threads)
        os.makedirs(cfg.out_dir, exist_ok=True)
        start = 0
        ckpt = checkpoint.load(cfg) if cfg.resume else None
        if ckpt is not None:
            start = self.load(ckpt)
            log.info("resuming %s after round %d", cfg.out_dir, start)
        else:
            algo.init_server(self.global_state, self._server(0))
        resumed_from = start
        crash_after = int(os.environ.get(CRASH_ENV, "0") or 0)
        bar = tqdm(range(start + 1, cfg.rounds + 1), desc=f"{algo.name}", unit="round",
                   disable=not cfg.progress or self.best["stopped"], initial=start, total=cfg.rounds)
        for rnd in bar:
            if self.best["stopped"]:
                break
            t_round = time.perf_counter()
            sampled = tuple(sample_clients(len(self.data.clients), cfg.fraction_fit, cfg.min_clients, cfg.seed, rnd))
            server = self._server(rnd, sampled)
            updates, stats = [], PhaseStats()
            for cid in sampled:
                upd, st = self.train_client(cid, rnd, server)
                updates.append(upd)
                stats.add(st)
            self.global_state = algo.aggregate(self.global_state, updates, server)
            t_eval = time.perf_counter()
            ev = self.evaluate_round()
            primary = ev[algo.primary_model]
            value = primary["val"]["overall"][cfg.early_stopping_metric]
            stop = self._early_stop(rnd, value)
            self.best["stopped"] = stop
            self.history.append({
                "round": rnd, "sampled": list(sampled), "train_loss": stats.mean_loss,
                "train_images": stats.images, "train_seconds": stats.seconds,
                "round_seconds": t_eval - t_round,
                "eval_seconds": time.perf_counter() - t_eval, "val_metric": value,
                "global": ev["global"]["test"], "personal": ev["personal"]["test"],
            })
            checkpoint.save(cfg, self.state(rnd))
            bar.set_postfix({cfg.early_stopping_metric: f"{value:.3f}", "loss": f"{stats.mean_loss:.3f}"})
            if crash_after and rnd == crash_after:
                os._exit(75)
            if stop:
                log.info("early stopping after round %d (best round %d)", rnd, self.best["round"])
                break
        bar.close()
        result = self._result(resumed_from, time.perf_counter() - t0)
        torch.save({"global_state": self.global_state, "local_states": self.local_states},
                   os.path.join(cfg.out_dir, "final_model.pt"))
        report.write_all(result)
        return result

    def _result(self, resumed_from: int, wall: float) -> RunResult:
        last = self.history[-1] if self.history else None
        if last is None:
            raise RuntimeError("the run trained no round; check rounds >= 1")
        return RunResult(
            config=self.cfg, classes=self.data.classes, client_names=tuple(c.name for c in self.data.clients),
            rounds_completed=last["round"], stopped_early=bool(self.best["stopped"]),
            best_round=int(self.best["round"]), primary_model=self.algo.primary_model,
            global_metrics=last["global"], personal_metrics=last["personal"], history=self.history,
            train_images=sum(h["train_images"] for h in self.history),
            train_seconds=sum(h["train_seconds"] for h in self.history),
            wall_seconds=wall, resumed_from=resumed_from, out_dir=self.cfg.out_dir,
            skipped_images=[list(c.skipped) for c in self.data.clients],
        )


def load_data(cfg: RunConfig) -> FederatedData:
    """The federation a config names (decoded once; pass it to several runs to reuse it)."""
    return load_federation(cfg.data_dirs, cfg.image_size, cfg.in_chans, cfg.val_fraction,
                           cfg.test_fraction, cfg.seed)
