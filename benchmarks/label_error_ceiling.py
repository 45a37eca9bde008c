"""Label errors: how far could a far better model than a site's own get? A ceiling for issue 4's target.

The C2 label-error detector (``tools.cleaning_labels.label_issues``) trains a small model on the
folder it checks: tens to a few hundred images. This benchmark asks whether the target (precision
0.7 at recall 0.5) is out of reach because of that model or because of the images. For every
labelled dataset of a built environment (duplicates and off-topic images left out, as after the
earlier cleaning steps) it ranks each image by the probability a model gives its *given* label,
lowest first, with three models:

- ``site``: the detector's own out-of-fold model on the folder's features (what ``label_issues`` uses);
- ``pooled``: the same features and model, trained on every site's images of the modality with their
  *true* concepts (``--folds``-fold out-of-fold over the pooled images);
- ``cnn``: the learnability ``SmallCNN`` at 64 px, trained the same way (pooled, true concepts).

The pooled models see what no site has: all sites' images, correctly labelled. Printed per modality
and model: balanced accuracy against the true concepts, average precision of the ranking for the
planted label errors, the best precision at recall >= 0.5 (one threshold over the modality's pooled
ranking), and confident learning's (cleanlab) precision / recall with these probabilities.

Usage:
    python benchmarks/label_error_ceiling.py [--modality M ...] [--seed N] [--folds K] [--epochs E]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from envs.build import BuiltEnv, build
from envs.concepts import CONCEPTS, MODALITIES
from tools.imageio import UnreadableImage, read_image


@dataclass
class Folder:
    """One dataset's checkable images (decoded, full size), given and true concept indices, planted errors."""

    images: list[Image.Image]
    given: np.ndarray
    true: np.ndarray
    noisy: np.ndarray
    concepts: list[str]


def folders_of(env: BuiltEnv, modality: str, min_per_class: int = 5) -> list[Folder]:
    """The labelled datasets as the detector sees them: classes with at least ``min_per_class`` images."""
    out = []
    for site_id, site in env.key.sites.items():
        raw = env.site_dir(site_id) / "raw"
        for ds in site.datasets:
            rows = []
            for rel, t in ds.files.items():
                concept = ds.label_concepts.get(t.given_label) if t.given_label else None
                if t.role != "image" or concept not in CONCEPTS[modality] or t.concept not in CONCEPTS[modality]:
                    continue
                try:
                    rows.append((read_image(raw / rel), concept, t.concept, t.noisy))
                except UnreadableImage:
                    continue
            counts = Counter(r[1] for r in rows)
            concepts = sorted(c for c, n in counts.items() if n >= min_per_class)
            rows = [r for r in rows if r[1] in concepts]
            if len(concepts) < 2:
                continue
            out.append(Folder([r[0] for r in rows], np.array([concepts.index(r[1]) for r in rows]),
                              np.array([concepts.index(r[2]) if r[2] in concepts else -1 for r in rows]),
                              np.array([r[3] for r in rows]), concepts))
    return out


def site_probs(f: Folder) -> np.ndarray:
    """The detector's own out-of-fold probabilities (features and model of ``label_issues``)."""
    from tools.cleaning_features import feature_matrix
    from tools.cleaning_labels import out_of_fold_probs

    return out_of_fold_probs(feature_matrix(f.images), f.given, folds=5)


def pooled_probs(folders: list[Folder], modality: str, encode: Callable[[list[Image.Image]], Any],
                 fit_predict: Callable[[Any, np.ndarray, Any, int], np.ndarray], folds: int,
                 seed: int) -> list[np.ndarray]:
    """Out-of-fold probabilities of a model trained on every site's images with their *true* concepts.

    The images of all datasets are pooled, encoded once (``encode``) and split into ``folds``; each
    image is scored by a model that never saw it (``fit_predict(x_train, y_train, x_test, n_classes)``),
    over all the modality's concepts, then restricted to its dataset's concepts.
    """
    from sklearn.model_selection import StratifiedKFold

    true = np.array([CONCEPTS[modality].index(f.concepts[t]) if t >= 0 else -1 for f in folders for t in f.true])
    keep = np.flatnonzero(true >= 0)
    images = [im for f in folders for im in f.images]
    x = encode([images[i] for i in keep])  # rows follow ``keep``
    probs = np.full((len(true), len(CONCEPTS[modality])), 1e-6)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(keep, true[keep]):
        probs[keep[test]] = fit_predict(x[train], true[keep[train]], x[test], len(CONCEPTS[modality]))
    out, start = [], 0
    for f in folders:
        cols = [CONCEPTS[modality].index(c) for c in f.concepts]
        p = probs[start:start + len(f.images)][:, cols] + 1e-6
        out.append(p / p.sum(axis=1, keepdims=True))
        start += len(f.images)
    return out


def cnn_input(images: list[Image.Image]):
    """Images as the learnability ``SmallCNN`` takes them: 64 px, grey when every image is grey."""
    from envs.synth.learnability import to_tensor

    mode = "L" if all(im.mode == "L" for im in images) else "RGB"
    arr = np.stack([np.asarray(im.convert(mode).resize((64, 64), Image.Resampling.BILINEAR)) for im in images])
    return to_tensor(np.ascontiguousarray(arr[:, None] if mode == "L" else arr.transpose(0, 3, 1, 2)))


def cnn_fit_predict(epochs: int, seed: int) -> Callable[[Any, np.ndarray, Any, int], np.ndarray]:
    """A learnability ``SmallCNN`` trained on ``x_train``; its softmax on ``x_test``."""
    def fit_predict(x_train, y_train: np.ndarray, x_test, n_classes: int) -> np.ndarray:
        import torch

        from envs.synth.learnability import train_small_cnn

        model = train_small_cnn(x_train, torch.from_numpy(y_train), np.arange(len(y_train)), n_classes,
                                epochs=epochs, seed=seed).eval()
        with torch.no_grad():
            return torch.softmax(model(x_test), dim=1).numpy()
    return fit_predict


MODELS = ("site", "pooled", "cnn")


def probabilities(model: str, folders: list[Folder], modality: str, folds: int, epochs: int,
                  seed: int) -> list[np.ndarray]:
    """Each folder's probabilities over its concepts from one of :data:`MODELS`."""
    from tools.cleaning_features import feature_matrix
    from tools.cleaning_labels import fit_predict_proba

    if model == "site":
        return [site_probs(f) for f in folders]
    if model == "pooled":
        return pooled_probs(folders, modality, feature_matrix, fit_predict_proba, folds, seed)
    return pooled_probs(folders, modality, cnn_input, cnn_fit_predict(epochs, seed), folds, seed)


def scores(folders: list[Folder], probs: list[np.ndarray]) -> dict[str, float]:
    """Balanced accuracy, ranking AP, best precision at recall >= 0.5, cleanlab P / R; pooled over folders."""
    from cleanlab.filter import find_label_issues
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, precision_recall_curve

    conf, noisy, accs, tp, fp = [], [], [], 0, 0
    for f, p in zip(folders, probs, strict=True):
        conf.append(p[np.arange(len(f.given)), f.given])
        noisy.append(f.noisy)
        known = f.true >= 0
        accs.append(balanced_accuracy_score(f.true[known], p[known].argmax(axis=1)))
        flagged = np.zeros(len(f.given), dtype=bool)
        flagged[find_label_issues(f.given, p, filter_by="prune_by_noise_rate", n_jobs=1)] = True
        tp += int((flagged & f.noisy).sum())
        fp += int((flagged & ~f.noisy).sum())
    c, t = np.concatenate(conf), np.concatenate(noisy)
    prec, rec, _ = precision_recall_curve(t, -c)
    return {"balanced_accuracy": float(np.mean(accs)), "ap": float(average_precision_score(t, -c)),
            "p_at_r50": float(prec[rec >= 0.5].max()), "cl_precision": tp / max(1, tp + fp),
            "cl_recall": tp / max(1, int(t.sum())), "errors": int(t.sum()), "images": len(t)}


def main() -> None:
    """Print, per modality, how well each model's confidence in the given label finds the planted errors."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modality", action="append", choices=MODALITIES)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=3, help="folds of the pooled models")
    ap.add_argument("--epochs", type=int, default=12, help="epochs of the pooled CNN")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    print(f"{'modality':<16}{'model':<9}{'images':>7}{'errors':>7}{'bal.acc':>8}{'AP':>7}{'P@R.5':>7}"
          f"{'CL prec':>8}{'CL rec':>7}")
    for m in args.modality or MODALITIES:
        with tempfile.TemporaryDirectory() as tmp:
            env = build(m, Path(tmp) / "env", seed=args.seed, scale=args.scale, force=True)
            folders = folders_of(env, m)
        for name in MODELS:
            probs = probabilities(name, folders, m, args.folds, args.epochs, args.seed)
            s = scores(folders, probs)
            print(f"{m:<16}{name:<9}{s['images']:>7}{s['errors']:>7}{s['balanced_accuracy']:>8.3f}{s['ap']:>7.3f}"
                  f"{s['p_at_r50']:>7.3f}{s['cl_precision']:>8.3f}{s['cl_recall']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
