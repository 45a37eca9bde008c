"""Metrics against scikit-learn on hand-made cases, including classes missing from a client."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, log_loss, roc_auc_score

from fl_core.metrics import binary_auroc, classification_metrics, mean_metrics


def _logits(probs):
    return np.log(np.asarray(probs, dtype=np.float64))


def test_three_class_case_matches_sklearn():
    y = np.array([0, 0, 1, 1, 2, 2, 2])
    probs = np.array([[.7, .2, .1], [.3, .4, .3], [.1, .8, .1], [.2, .5, .3], [.1, .1, .8], [.5, .2, .3], [.2, .2, .6]])
    m = classification_metrics(y, _logits(probs))
    pred = probs.argmax(1)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr"))
    assert m["loss"] == pytest.approx(log_loss(y, probs))
    assert m["n"] == 7


def test_missing_class_in_y_true_is_skipped_like_sklearn():
    # label space has 3 classes, this client only has 0 and 1, and one prediction is class 2
    y = np.array([0, 0, 1, 1])
    probs = np.array([[.6, .3, .1], [.2, .3, .5], [.1, .8, .1], [.3, .6, .1]])
    m = classification_metrics(y, _logits(probs))
    pred = probs.argmax(1)
    assert m["balanced_accuracy"] == pytest.approx(0.75)  # recall 0.5 and 1.0 over present classes
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    expected_auc = np.mean([roc_auc_score(y == c, probs[:, c]) for c in (0, 1)])
    assert m["auroc"] == pytest.approx(expected_auc)


def test_single_class_split_has_no_auroc_and_empty_split_is_nan():
    m = classification_metrics(np.array([1, 1]), _logits([[.2, .8], [.6, .4]]))
    assert math.isnan(m["auroc"]) and m["accuracy"] == 0.5
    empty = classification_metrics(np.array([], dtype=int), np.zeros((0, 2)))
    assert empty["n"] == 0 and math.isnan(empty["accuracy"])


def test_mean_metrics_ignores_nan():
    a = {"accuracy": 1.0, "balanced_accuracy": 1.0, "macro_f1": 1.0, "auroc": math.nan, "loss": 0.1, "n": 2}
    b = {"accuracy": 0.5, "balanced_accuracy": 0.5, "macro_f1": 0.5, "auroc": 0.8, "loss": 0.3, "n": 4}
    m = mean_metrics([a, b])
    assert m["accuracy"] == 0.75 and m["auroc"] == 0.8 and m["n"] == 6 and m["loss"] == pytest.approx(0.2)


@pytest.mark.parametrize("seed", range(20))
def test_binary_auroc_is_sklearns_with_ties_and_imbalance(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 200))
    y = rng.random(n) < rng.uniform(0.05, 0.95)
    y[:2] = [True, False]  # both kinds present
    scores = rng.random(n)
    if seed % 2:  # coarse scores: many ties, the case the average rank is for
        scores = np.round(scores * rng.integers(1, 6)) / 5
    assert binary_auroc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_binary_auroc_of_perfect_inverted_and_constant_scores():
    y = np.array([False, False, True, True])
    assert binary_auroc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert binary_auroc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert binary_auroc(y, np.full(4, 0.5)) == 0.5
    with pytest.raises(ValueError, match="both"):
        binary_auroc(np.array([True, True]), np.array([0.1, 0.2]))
