"""Label errors: confident learning (``cleanlab.filter.find_label_issues``) on out-of-fold predicted
probabilities of a logistic regression trained on the folder's own images, trusted only where that
model beats chance."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from tools.cleaning_features import ImageFeatures, feature_matrix_of, image_features
from tools.cleaning_scan import Progress


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0,
                      max_fit: int | None = None) -> np.ndarray:
    """Predicted class probabilities for each image from a model that never saw it (k-fold).

    With ``max_fit``, each fold's model is fitted on at most that many of the other folds' images
    (a stratified sample), so that the cost of a 50k-image folder stays bounded; every image is
    still predicted by a model that never saw it.
    """
    from sklearn.model_selection import StratifiedKFold

    n_classes = int(labels.max()) + 1
    probs = np.zeros((len(labels), n_classes))
    smallest = int(np.bincount(labels).min())
    splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    progress = Progress("label-error model folds", splitter.get_n_splits())
    for train, test in splitter.split(features, labels):
        if max_fit is not None and len(train) > max_fit:
            train = _stratified_sample(train, labels, max_fit, seed)
        probs[test] = fit_predict_proba(features[train], labels[train], features[test], n_classes)
        progress.step()
    progress.finish()
    return probs


def _stratified_sample(rows: np.ndarray, labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """About ``size`` of ``rows``, each class in its share (at least one image of each)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels[rows]):
        of_c = rows[labels[rows] == c]
        out.append(rng.choice(of_c, size=max(1, round(size * len(of_c) / len(rows))), replace=False))
    return np.sort(np.concatenate(out))


def fit_predict_proba(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int) -> np.ndarray:
    """The label-error detector's model (scaled, strongly regularised logistic regression) fitted on
    ``x_train``: its probabilities for ``x_test`` over all ``n_classes``, zero for classes it never saw."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000)).fit(x_train, y_train)
    p = np.zeros((len(x_test), n_classes))
    p[:, model.classes_] = model.predict_proba(x_test)
    return p


_CLEANLAB_LOCK = threading.Lock()

#: How much more out-of-fold probability the model's likeliest class must have than the given label
#: before a confident-learning issue is reported. A margin ranks label errors better than the given
#: label's probability alone: on the organised folders of scale 1 (duplicates and off-topic images
#: out), a margin of 0.7 found precision / recall 0.47 / 0.37 (seed 0) and 0.37 / 0.30 (seed 1,
#: held out) where "probability below 0.05" found 0.37 / 0.30 and 0.35 / 0.28. Lower margins trade
#: precision for recall (0.5: 0.35 / 0.53 and 0.29 / 0.43).
LABEL_MIN_MARGIN = 0.7
#: How far above chance (1 / classes) the folder's out-of-fold balanced accuracy must be before its
#: model may contradict a label. Below it the model has learnt nothing the labels say, and every
#: "confident" contradiction is noise: at scale 1, seed 0, such folders (cervical cytology in a
#: histopathology environment, 11 coded fundus labels...) gave 14, 10, 30 flags and no true one.
#: Over the six environments (scale 1, seed 0) the gate took precision from 0.21 to 0.38 (recall
#: 0.32 -> 0.25; ``benchmarks/cleaning_quality.py``).
LABEL_MIN_SKILL = 0.1
#: Most images each fold's label-error model is fitted on (every image is still scored; see
#: :func:`out_of_fold_probs`), so that a 50k-image folder's cost stays bounded.
LABEL_FIT_MAX = 20_000


@dataclass(frozen=True)
class LabelIssues:
    """What the label-error detector found, and how far its model can be trusted.

    Attributes:
        indices: likely mislabelled images, most likely first (empty when the model is not trusted).
        classes_not_checked: classes with too few images to learn or check.
        balanced_accuracy: the model's out-of-fold balanced accuracy on the checked classes (None
            when fewer than two classes could be checked).
        chance: balanced accuracy of guessing (1 / checked classes), None as above.
    """

    indices: list[int]
    classes_not_checked: list[str]
    balanced_accuracy: float | None = None
    chance: float | None = None

    @property
    def trusted(self) -> bool:
        """The model beats chance by :data:`LABEL_MIN_SKILL`, so its contradictions mean something."""
        return self.balanced_accuracy is not None and self.balanced_accuracy >= self.chance + LABEL_MIN_SKILL


def label_issues(images: list[Image.Image], labels: list[str], folds: int = 5, min_per_class: int = 5,
                 min_margin: float = LABEL_MIN_MARGIN, seed: int = 0) -> LabelIssues:
    """Likely mislabelled images of a folder: :func:`label_issues_of` their features."""
    return label_issues_of([image_features(im) for im in images], labels, folds, min_per_class, min_margin, seed)


def label_issues_of(per_image: list[ImageFeatures], labels: list[str], folds: int = 5, min_per_class: int = 5,
                    min_margin: float = LABEL_MIN_MARGIN, seed: int = 0,
                    max_fit: int | None = None) -> LabelIssues:
    """Likely mislabelled images of a folder, judged by a model trained on the folder's other images.

    Confident learning alone flagged ~6x more images than were mislabelled here (the small model
    is far from perfect); an issue is therefore reported only where the model's likeliest class
    also beats the given label by more than ``min_margin`` probability, and only when the model's out-of-fold
    balanced accuracy shows it learnt the classes at all (:attr:`LabelIssues.trusted`).

    Classes with fewer than ``min_per_class`` images cannot be learnt or checked; their images are
    never flagged and the class names are returned so the report can say so.

    ``max_fit`` bounds the images each fold's model is fitted on (every image is still scored):
    see :func:`out_of_fold_probs`.
    """
    from cleanlab.filter import find_label_issues
    from sklearn.metrics import balanced_accuracy_score

    counts = Counter(labels)
    usable = sorted(c for c, n in counts.items() if n >= min_per_class)
    skipped = sorted(c for c in counts if c not in usable)
    idx = np.array([i for i, lab in enumerate(labels) if lab in usable])
    if len(usable) < 2 or len(idx) < 2 * min_per_class:
        return LabelIssues([], sorted(counts))
    y = np.array([usable.index(labels[i]) for i in idx])
    feats = feature_matrix_of([per_image[i] for i in idx])
    probs = out_of_fold_probs(feats, y, folds, seed, max_fit)
    found = LabelIssues([], skipped, float(balanced_accuracy_score(y, probs.argmax(axis=1))), 1 / len(usable))
    if not found.trusted:
        return found
    # n_jobs=1: cleanlab otherwise forks a multiprocessing pool, and a fork from one of the graph's
    # worker threads (clients run in parallel) can inherit a held lock and hang forever (seen in CI).
    # The lock: find_label_issues passes its per-class arrays through module globals, so two sites
    # cleaned at once in parallel threads overwrite each other's (seen: a NumPy shape error).
    with _CLEANLAB_LOCK:
        order = find_label_issues(y, probs, filter_by="prune_by_noise_rate",
                                  return_indices_ranked_by="normalized_margin", n_jobs=1)
    margin = probs.max(axis=1) - probs[np.arange(len(y)), y]
    return replace(found, indices=[int(idx[i]) for i in order if margin[i] > min_margin])
