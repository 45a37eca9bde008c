"""Classification metrics that tolerate missing classes (a client may lack some labels).

Conventions (documented because clients rarely hold every class):
- balanced accuracy: mean recall over the classes present in ``y_true`` (as scikit-learn).
- macro-F1: mean F1 over the classes present in ``y_true`` or ``y_pred`` (as scikit-learn).
- AUROC: one-vs-rest, macro mean over the classes that have both positives and negatives in
  ``y_true``; ``nan`` when no class qualifies. Each class's value is the Mann-Whitney form (mean
  rank of the positives, ties averaged), which is exactly scikit-learn's ``roc_auc_score`` (tested
  against it): importing scikit-learn (with scipy and pandas) cost every training process ~1 s,
  and each training job, Flower ServerApp and ClientApp is a fresh process.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["binary_auroc", "classification_metrics", "confusion_metrics", "mean_metrics"]


def binary_auroc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positive`` (both kinds present).

    The probability that a positive scores above a negative, a tie counting one half: the positives'
    rank sum with tied scores given their average rank, less its minimum, over ``n_pos * n_neg``.
    """
    positive = np.asarray(positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs both positives and negatives")
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based, ties at their mean rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classification_metrics(y_true: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro-F1, AUROC (OvR) and cross-entropy from raw logits.

    Args:
        y_true: integer labels, shape ``(n,)``.
        logits: unnormalised scores, shape ``(n, num_classes)``.

    Returns:
        ``{"accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss", "n"}``; all ``nan``
        (and ``n == 0``) for an empty split.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    logits = np.asarray(logits, dtype=np.float64)
    n = len(y_true)
    if n == 0:
        return {k: math.nan for k in ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss")} | {"n": 0}
    k = logits.shape[1]
    y_pred = logits.argmax(axis=1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    probs = np.round(_softmax(logits), 12)  # equal scores must tie, not differ by float noise
    aucs = []
    for c in range(k):
        pos = y_true == c
        if 0 < pos.sum() < n:
            aucs.append(binary_auroc(pos, probs[:, c]))
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return {
        **confusion_metrics(cm),
        "auroc": float(np.mean(aucs)) if aucs else math.nan,
        "loss": float(-log_p[np.arange(n), y_true].mean()),
        "n": n,
    }


def confusion_metrics(cm: np.ndarray) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 from a confusion matrix (rows: true, columns: predicted).

    Why separate: summed confusion matrices give the pooled metrics of several clients exactly,
    without any example leaving its client (the distributed engine's evaluation).
    """
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    k = len(tp)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    f1_labels = present | (predicted > 0)
    return {
        "accuracy": float(tp.sum() / cm.sum()),
        "balanced_accuracy": float(recall[present].mean()),
        "macro_f1": float(f1[f1_labels].mean()),
    }


def mean_metrics(per_client: list[dict[str, float]]) -> dict[str, float]:
    """Unweighted mean over clients of each metric, ignoring ``nan`` (a client without AUROC)."""
    out: dict[str, float] = {}
    for key in ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss"):
        vals = [m[key] for m in per_client if not math.isnan(m[key])]
        out[key] = float(np.mean(vals)) if vals else math.nan
    out["n"] = sum(int(m["n"]) for m in per_client)
    return out
