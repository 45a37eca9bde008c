"""Pooled test metrics over clients from per-client sufficient statistics (no example leaves a client).

The in-process engine pools every client's logits to compute the "overall" metrics. A distributed
client sends instead: its confusion matrix (accuracy, balanced accuracy and macro-F1 of the pooled
set follow exactly), its summed cross-entropy (the pooled loss exactly), and per class a histogram of
the predicted probability for its positives and negatives (the pooled one-vs-rest AUROC, exact up to
ties inside one of :data:`AUROC_BINS` bins, which count one half as ``roc_auc_score`` counts ties).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from fl_core.metrics import confusion_metrics

__all__ = ["AUROC_BINS", "pooled_metrics", "split_stats"]

#: Probability bins of the AUROC histograms: 4096 bins put two scores in one bin only when they
#: differ by less than 0.00025.
AUROC_BINS = 4096


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def split_stats(y: np.ndarray, logits: np.ndarray, num_classes: int) -> dict[str, Any]:
    """A client's sufficient statistics on one split (counts and sums only; arrays as tensors for records)."""
    y = np.asarray(y, dtype=np.int64)
    logits = np.asarray(logits, dtype=np.float64)
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    pos = np.zeros((num_classes, AUROC_BINS), dtype=np.int64)
    neg = np.zeros((num_classes, AUROC_BINS), dtype=np.int64)
    nll = 0.0
    if len(y):
        np.add.at(cm, (y, logits.argmax(axis=1)), 1)
        probs = _softmax(logits)
        bins = np.minimum((probs * AUROC_BINS).astype(np.int64), AUROC_BINS - 1)
        for c in range(num_classes):
            is_pos = y == c
            np.add.at(pos[c], bins[is_pos, c], 1)
            np.add.at(neg[c], bins[~is_pos, c], 1)
        log_p = logits - logits.max(axis=1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
        nll = float(-log_p[np.arange(len(y)), y].sum())
    return {"confusion": torch.from_numpy(cm), "nll_sum": nll, "n": len(y),
            "auroc_pos": torch.from_numpy(pos), "auroc_neg": torch.from_numpy(neg)}


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """One-vs-rest AUROC of one class from its two histograms (ties in a bin count one half)."""
    below = np.concatenate(([0], np.cumsum(neg)[:-1]))
    return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def pooled_metrics(stats: list[dict[str, Any]]) -> dict[str, float]:
    """The metrics of :func:`fl_core.metrics.classification_metrics` on the clients' splits pooled."""
    n = sum(int(s["n"]) for s in stats)
    if n == 0:
        return {k: math.nan for k in ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss")} | {"n": 0}
    cm = sum(np.asarray(s["confusion"], dtype=np.int64) for s in stats)
    pos = sum(np.asarray(s["auroc_pos"], dtype=np.int64) for s in stats)
    neg = sum(np.asarray(s["auroc_neg"], dtype=np.int64) for s in stats)
    aucs = [_auroc(pos[c], neg[c]) for c in range(len(cm)) if pos[c].sum() and neg[c].sum()]
    return {
        **confusion_metrics(cm),
        "auroc": float(np.mean(aucs)) if aucs else math.nan,
        "loss": sum(float(s["nll_sum"]) for s in stats) / n,
        "n": n,
    }
