"""Reference points with the same model, splits and epochs: local-only per client, and pooled.

Both train for ``rounds * local_epochs`` epochs with the run's optimizer, through the same batch
loop as FL clients (:func:`fl_core.training.run_phase`), so an FL result can be read against them:
FL should beat the best local site and approach pooled training.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch

from algorithms.api import ClientContext, FLAlgorithm, Message, Phase
from fl_core.config import RunConfig
from fl_core.data import ClientData, FederatedData, pooled
from fl_core.metrics import classification_metrics, mean_metrics
from fl_core.models import clone_state, create_model, model_info
from fl_core.training import PhaseStats, calibrate_batchnorm, derive_seed, evaluate, run_phase

__all__ = ["run_baselines", "train_centralised"]

log = logging.getLogger(__name__)


def train_centralised(cfg: RunConfig, data: FederatedData, client: ClientData, seed_tag: int) -> tuple[
        torch.nn.Module, PhaseStats]:
    """Train one model on ``client``'s training split for ``rounds * local_epochs`` epochs."""
    device = torch.device(cfg.device)
    torch.manual_seed(derive_seed(cfg.seed, 0))  # same initial weights as the FL run
    model = create_model(cfg.model, data.num_classes, cfg.in_chans, cfg.global_pool).to(device)
    torch.manual_seed(derive_seed(cfg.seed, seed_tag, 1))
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, seed_tag, 2))
    info = model_info(model, data.num_classes)
    state = clone_state(model.state_dict())
    ctx = ClientContext(
        client_id=-1, round=0, info=info, global_state=state, message=Message(), state={},
        num_samples=len(client.train), label_counts=client.label_counts(data.num_classes),
        local_epochs=cfg.rounds * cfg.local_epochs, lr=cfg.lr, make_model=lambda s: model,
    )
    train = client.train.to(device)
    stats = run_phase(model, train, Phase(epochs=cfg.rounds * cfg.local_epochs), FLAlgorithm(), ctx, cfg, gen)
    return model, stats


def _evaluate_on_site(model: torch.nn.Module, client: ClientData, device: torch.device, calibrate: bool) -> tuple[
        dict[str, float], np.ndarray]:
    """A model on one client's test split; with ``calibrate``, on a copy given the site's BatchNorm statistics."""
    if calibrate:
        model = copy.deepcopy(model)
        calibrate_batchnorm(model, client.train.to(device))
    return evaluate(model, client.test.to(device))


def run_baselines(cfg: RunConfig, data: FederatedData) -> dict[str, Any]:
    """Local-only (each client alone) and pooled training; test metrics on each client's split.

    Returns:
        ``{"local": {"clients": [...], "client_mean", "best_client", "overall"},
        "pooled": {"clients": [...], "client_mean", "overall"}}`` with metric dicts as in
        :class:`fl_core.result.RunResult`, plus ``images_per_second`` for pooled training.
    """
    torch.set_num_threads(cfg.num_threads)
    device = torch.device(cfg.device)
    local_metrics, ys, logits = [], [], []
    for cid, client in enumerate(data.clients):
        model, _ = train_centralised(cfg, data, client, 10_000 + cid)
        m, lg = evaluate(model, client.test.to(device))
        local_metrics.append(m)
        ys.append(client.test.y.numpy())
        logits.append(lg)
    best = max(range(len(local_metrics)), key=lambda i: local_metrics[i]["balanced_accuracy"])
    local = {
        "clients": local_metrics, "client_mean": mean_metrics(local_metrics),
        "best_client": {"client": data.clients[best].name, **local_metrics[best]},
        "overall": classification_metrics(np.concatenate(ys), np.concatenate(logits)),
    }
    model, stats = train_centralised(cfg, data, pooled(data), 20_000)
    calibrate = cfg.bn_calibration == "local"  # each site re-estimates BatchNorm statistics, as for the FL model
    per_client = [_evaluate_on_site(model, c, device, calibrate) for c in data.clients]
    pooled_clients = [m for m, _ in per_client]
    pooled_res = {
        "clients": pooled_clients, "client_mean": mean_metrics(pooled_clients),
        "overall": classification_metrics(np.concatenate(ys), np.concatenate([lg for _, lg in per_client])),
        "images_per_second": stats.images / stats.seconds if stats.seconds else float("nan"),
    }
    log.info("baselines: local mean bal-acc %.3f, pooled bal-acc %.3f",
             local["client_mean"]["balanced_accuracy"], pooled_res["overall"]["balanced_accuracy"])
    return {"local": local, "pooled": pooled_res}
