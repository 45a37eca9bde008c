"""The typed outcome of a run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fl_core.config import RunConfig

__all__ = ["RunResult", "privacy_note"]


def privacy_note(shares: tuple[str, ...] | list[str]) -> str:
    """One sentence for a report: what leaves each site besides model weights (a privacy cost)."""
    if not shares:
        return "clients upload model weights only"
    return (f"clients upload data-derived content beyond model weights: {', '.join(shares)}; a privacy cost "
            "the consortium must accept (it is more than plain FedAvg discloses)")


@dataclass
class RunResult:
    """What :func:`fl_core.run` returns (and ``summary.json`` holds).

    Metric dicts have keys ``accuracy, balanced_accuracy, macro_f1, auroc, loss, n``; "overall" is
    computed on all clients' test splits pooled, "client_mean" is the unweighted mean over clients.

    Attributes:
        config: the run's configuration.
        classes: label space (index -> class name).
        client_names: client folder names, by client id.
        rounds_completed: rounds trained (less than ``config.rounds`` after early stopping).
        stopped_early: early stopping ended the run.
        best_round: round with the best validation metric of the primary model.
        primary_model: ``"global"`` or ``"personal"``: the model the algorithm is judged by.
        global_metrics: last round's test metrics of the global model: ``overall``, ``client_mean``,
            ``clients`` (list, by client id).
        personal_metrics: same for each client's personalised model.
        history: one record per round (as in ``history.jsonl``).
        train_images, train_seconds: images processed and seconds spent in local training.
        wall_seconds: seconds of this process's run (a resumed run counts only its own part).
        resumed_from: the round the run resumed after (0 for a fresh run).
        out_dir: where the reports are.
        baselines: local-only and pooled results when requested.
        skipped_images: per client id, the images that could not be decoded and were left out
            (``<class>/<file>: <reason>``; empty lists when all were read).
    """

    config: RunConfig
    classes: tuple[str, ...]
    client_names: tuple[str, ...]
    rounds_completed: int
    stopped_early: bool
    best_round: int
    primary_model: str
    global_metrics: dict[str, Any]
    personal_metrics: dict[str, Any]
    history: list[dict[str, Any]]
    train_images: int
    train_seconds: float
    wall_seconds: float
    resumed_from: int
    out_dir: str
    baselines: dict[str, Any] | None = field(default=None)
    skipped_images: list[list[str]] = field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        """How many images were unreadable and left out, over all clients."""
        return sum(len(s) for s in self.skipped_images)

    @property
    def has_personal(self) -> bool:
        """The algorithm keeps personalised models (its personal metrics are not the global ones)."""
        if self.personal_metrics is self.global_metrics:
            return False
        # a result read back from summary.json (the Flower engines) holds two equal copies; NaN != NaN
        return _key(self.personal_metrics) != _key(self.global_metrics)

    @property
    def primary_metrics(self) -> dict[str, Any]:
        """Last round's test metrics of the model the algorithm is judged by."""
        return self.personal_metrics if self.primary_model == "personal" and self.has_personal else self.global_metrics

    @property
    def final(self) -> dict[str, float]:
        """Pooled test metrics of the primary model after the last round."""
        return self.primary_metrics["overall"]

    @property
    def outcome(self) -> float:
        """The primary model's balanced accuracy, unweighted mean over the sites' test splits.

        The one figure a run is judged by: reference tables (``envs calibrate``) record it per
        algorithm and S4 compares a run's own against them, so both read it from here.
        """
        return float(self.primary_metrics["client_mean"]["balanced_accuracy"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (without the per-round history)."""
        return {
            "engine": self.config.engine,
            "config": self.config.to_dict(),
            "classes": list(self.classes),
            "client_names": list(self.client_names),
            "rounds_completed": self.rounds_completed,
            "stopped_early": self.stopped_early,
            "best_round": self.best_round,
            "primary_model": self.primary_model,
            "final": self.final,
            "outcome": self.outcome,
            "global": self.global_metrics,
            "personal": self.personal_metrics,
            "train_images": self.train_images,
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
            "resumed_from": self.resumed_from,
            "baselines": self.baselines,
            "shares": list(self.config.shares),
            "privacy_note": privacy_note(self.config.shares),
            "skipped_images": [{"client_id": i, "client": name, "count": len(files), "files": files[:50]}
                               for i, (name, files) in enumerate(zip(self.client_names, self.skipped_images))
                               if files],
        }


def _key(metrics: dict[str, Any]) -> str:
    """A comparable text of a metrics dict (NumPy numbers and NaN included)."""
    return json.dumps(metrics, sort_keys=True, default=str)
