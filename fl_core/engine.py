"""The in-process FL engine: the server's round loop, calling the algorithm's server hooks.

The engine takes an algorithm instance (it never resolves names) and reaches each client, a
:class:`fl_core.client.SiteClient` holding its own data, algorithm instance and state, only through
a transport: in memory (``"direct"``) or through bytes with fresh client instances
(``"serialising"``), which is what a multi-process engine such as Flower does.

Every random stream (model init, client sampling, batch order, dropout) is seeded from
``(seed, round, client)`` rather than carried along. After each round the server checkpoints its
own state (global weights, algorithm state, history) and each client its own (control variates,
personal model, local keys) in ``out_dir/clients/``. A run killed at any point and started again
with the same configuration therefore ends with exactly the result of an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from algorithms.aggregation import StateDict
from algorithms.api import ClientUpdate, FLAlgorithm, ServerContext
from fl_core import checkpoint, report
from fl_core.client import SiteClient, Workspace
from fl_core.config import RunConfig
from fl_core.data import FederatedData, load_federation
from fl_core.metrics import classification_metrics, mean_metrics
from fl_core.models import ModelInfo, clone_state, create_model, model_info
from fl_core.result import RunResult
from fl_core.training import PhaseStats, derive_seed
from fl_core.transport import Transport, make_transport

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
    """One FL run over loaded data: the server's loop, reaching its clients through a transport.

    Args:
        cfg: the run configuration (``cfg.algorithm`` must name ``algorithm``).
        data: the federation's data; each client's part goes to its own :class:`SiteClient`.
        algorithm: the algorithm instance (resolve names with ``algorithms.registry.get_algorithm``).
        transport: ``"direct"`` (objects in memory) or ``"serialising"`` (every exchange through bytes,
            fresh client instances), or a :class:`fl_core.transport.Transport`.
    """

    def __init__(self, cfg: RunConfig, data: FederatedData, algorithm: FLAlgorithm,
                 transport: Transport | str = "direct") -> None:
        _check_matches(cfg, algorithm)
        self.cfg = cfg
        self.data = data
        self.algo = algorithm
        self.transport = make_transport(transport) if isinstance(transport, str) else transport
        self.device = torch.device(cfg.device)
        torch.manual_seed(derive_seed(cfg.seed, 0))
        model = create_model(cfg.model, data.num_classes, cfg.in_chans, cfg.global_pool)
        template = algorithm.build_model(model).to(self.device)
        self.info: ModelInfo = model_info(template, data.num_classes)
        self.local_keys = algorithm.local_keys(self.info)
        self.workspace = Workspace(template)
        self.sizes = tuple(len(c.train) for c in data.clients)
        self.clients = [self._client(i, template) for i in range(len(data.clients))]
        # server state, all checkpointed by the server; client state is the clients' own
        self.global_state: StateDict = clone_state(template.state_dict())
        self.history: list[dict[str, Any]] = []
        self.best = {"round": 0, "value": None, "stale": 0, "stopped": False}
        self.personal_seen = False

    def _client(self, cid: int, template: torch.nn.Module) -> SiteClient:
        algo = self.transport.client_algorithm(self.algo)
        workspace = self.workspace if algo is self.algo else Workspace(template)
        state_dir = Path(self.cfg.out_dir) / "clients" / f"client_{cid:03d}"
        return SiteClient(cid, self.data.clients[cid], self.data.num_classes, algo, self.cfg, self.info,
                          workspace, state_dir)

    # ------------------------------------------------------------------ views (for inspection and tests)
    @property
    def client_states(self) -> dict[int, dict[str, Any]]:
        """Each client's persistent state, by id (read from the in-process clients; never sent)."""
        return {c.cid: c.state for c in self.clients}

    @property
    def local_states(self) -> dict[int, StateDict]:
        """Each client's local keys, by id, for clients that have any."""
        return {c.cid: c.local_weights for c in self.clients if c.local_weights}

    def _server(self, rnd: int, sampled: tuple[int, ...] = (), stage: int = 0) -> ServerContext:
        return ServerContext(rnd, self.info, len(self.data.clients), sampled, self.sizes, stage,
                             self.workspace.trainable)

    # ------------------------------------------------------------------ one round
    def train_round(self, rnd: int, sampled: tuple[int, ...]) -> PhaseStats:
        """Every stage of round ``rnd``: configure, train and aggregate the sampled clients."""
        algo, stats = self.algo, PhaseStats()
        for stage, group in enumerate(algo.stages(self._server(rnd, sampled))):
            server = self._server(rnd, sampled, stage)
            updates: list[ClientUpdate] = []
            for cid in group:
                weights = algo.client_weights(cid, self.global_state, server)
                reply = self.transport.fit(self.clients[cid], rnd, stage, weights, algo.configure_client(cid, server))
                updates.append(reply.update)
                stats.add(reply.stats)
                self.personal_seen = self.personal_seen or reply.has_personal
            self.global_state = algo.aggregate(self.global_state, updates, server)
        return stats

    # ------------------------------------------------------------------ evaluation
    def evaluate_round(self) -> dict[str, Any]:
        """Global and personalised models on every client's val and test split (computed by the clients)."""
        personal = bool(self.local_keys) or self.personal_seen
        calibrate = self.cfg.bn_calibration == "local"
        replies = [self.transport.evaluate(c, self.global_state, personal, calibrate).arrays for c in self.clients]
        out = {kind: _metrics(replies, kind) for kind in (("global", "personal") if personal else ("global",))}
        out.setdefault("personal", out["global"])
        return out

    def _early_stop(self, rnd: int, value: float) -> bool:
        return early_stop(self.best, self.cfg, rnd, value)

    # ------------------------------------------------------------------ checkpoint state
    def state(self, rnd: int) -> dict[str, Any]:
        """The server's checkpoint: no client state (each client checkpoints its own)."""
        return {
            "fingerprint": self.cfg.fingerprint(), "round": rnd, "global_state": self.global_state,
            "algorithm_state": self.algo.get_state(), "history": self.history, "best": self.best,
            "personal_seen": self.personal_seen,
        }

    def load(self, ckpt: dict[str, Any]) -> int:
        dev = self.device
        rnd = int(ckpt["round"])
        self.global_state = {k: v.to(dev) for k, v in ckpt["global_state"].items()}
        self.algo.set_state(checkpoint.to_device(ckpt["algorithm_state"], dev))
        self.history = ckpt["history"]
        self.best = ckpt["best"]
        self.personal_seen = bool(ckpt.get("personal_seen", False))
        for c in self.clients:  # in a real federation each client does this on its own machine
            c.load(rnd)
        return rnd

    # ------------------------------------------------------------------ the loop
    def run(self, reports: bool = True) -> RunResult:
        """Train (or resume) to the configured number of rounds and write the reports.

        Args:
            reports: write ``history.jsonl``, ``metrics.csv``, ``summary.json``, the learning curves
                and ``final_model.pt``; checks that only read the returned result skip them.
        """
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
            for c in self.clients:  # a fresh start: no client may pick up an earlier run's state
                c.clear_saved()
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
            stats = self.train_round(rnd, sampled)
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
        if reports:
            torch.save({"global_state": self.global_state, "local_states": self.local_states},  # in-process only
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


def _check_matches(cfg: RunConfig, algorithm: FLAlgorithm) -> None:
    """Refuse an instance that is not what the configuration (and so the reports) name."""
    if not isinstance(algorithm, FLAlgorithm):
        raise TypeError(f"Engine needs an FLAlgorithm instance, got {type(algorithm).__name__}; resolve names "
                        "with algorithms.registry.get_algorithm(cfg.algorithm, **cfg.algorithm_params)")
    if algorithm.name != cfg.algorithm.strip().lower():
        raise ValueError(f"the config names algorithm {cfg.algorithm!r} but the instance is {algorithm.name!r}; "
                         "pass the instance the config names")
    params = algorithm.get_params()
    wrong = {k: v for k, v in cfg.algorithm_params.items() if k not in params or params[k] != v}
    if wrong:
        raise ValueError(f"config algorithm_params {wrong} differ from the instance's {params}; build the instance "
                         "with get_algorithm(cfg.algorithm, **cfg.algorithm_params)")


def _metrics(replies: list[dict[str, dict[str, torch.Tensor]]], kind: str) -> dict[str, dict[str, Any]]:
    """Per-client, client-mean and pooled metrics of one model kind from the clients' labels and logits."""
    out = {}
    for split in ("test", "val"):
        groups = [r[f"{kind}/{split}"] for r in replies]
        ys = [g["y"].numpy() for g in groups]
        logits = [g["logits"].numpy() for g in groups]
        per_client = [classification_metrics(y, lg) for y, lg in zip(ys, logits)]
        out[split] = {"overall": classification_metrics(np.concatenate(ys), np.concatenate(logits)),
                      "client_mean": mean_metrics(per_client), "clients": per_client}
    return out


def load_data(cfg: RunConfig) -> FederatedData:
    """The federation a config names (decoded once; pass it to several runs to reuse it)."""
    return load_federation(cfg.data_dirs, cfg.image_size, cfg.in_chans, cfg.val_fraction,
                           cfg.test_fraction, cfg.seed)


def early_stop(best: dict[str, Any], cfg: RunConfig, rnd: int, value: float) -> bool:
    """Record round ``rnd``'s validation ``value`` in ``best`` (in place); whether patience ran out.

    Shared by every engine, so the in-process and Flower runs stop after the same round.
    """
    better = best["value"] is None or (
        value < best["value"] if cfg.early_stopping_metric == "loss" else value > best["value"])
    if not math.isnan(value) and better:
        best.update(round=rnd, value=value, stale=0)
    else:
        best["stale"] += 1
    patience = cfg.early_stopping_patience
    return patience > 0 and best["stale"] >= patience
