"""The three cleaning detectors as pure functions over decoded images (no files, no tools).

* near-duplicates: correlation of band-pass perceptual fingerprints (crop-tolerant), grouped by
  union-find; one image per group is kept. (Plain pHash/dHash was measured first: on synthetic
  chest X-rays, where every image shares the same anatomy, a 64-bit pHash put ~950 distinct images
  within the radius that caught the copies, and it missed trimmed-and-rescaled copies.)
* off-topic images: a k-nearest-neighbour outlier score on robust image features, flagged where it
  lies far above the folder's typical score (a robust z-score).
* label errors: confident learning (``cleanlab.filter.find_label_issues``) on out-of-fold predicted
  probabilities of a logistic regression trained on the folder's own images, trusted only where
  that model beats chance.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from tools.cleaning_features import ImageFeatures, feature_matrix_of, fingerprints_of, image_features
from tools.cleaning_pairs import Fingerprints, similar_pairs_bounded
from tools.cleaning_scan import SCAN_WORKERS, Progress

log = logging.getLogger(__name__)

#: Default fingerprint correlation at or above which two images are near-duplicates. 0.96 with the
#: pixel-exact crop views of ``CROP_MARGINS``: at 0.93 distinct MRI and X-ray images were grouped
#: (precision 0.87 and 0.83); at 0.95 three distinct chest X-rays correlated 0.951-0.956 (x-ray, seed 2:
#: precision 0.945). At 0.96 all six environments at scale 1, seeds 0-2, have precision and recall >= 0.957.
DUPLICATE_SIMILARITY = 0.96
#: Robust z-score above which an image is always off-topic (below it, :func:`offtopic_cut` decides).
#: 30, not 10: in tight folders a whole sub-population of on-topic images scores 13-28 (histopathology,
#: seed 1: precision 0.32 at 10, 1.00 at 30); the gap still separates the off-topic ones above them.
OFFTOPIC_Z = 30.0
#: Share of a folder's highest outlier scores searched for the gap, and the least z-score a flagged image has.
#: 1.5, not 3: with bounded, block-weighted features (:func:`~tools.cleaning_features.feature_matrix`)
#: on-topic scores fall in a narrower range, and a group of off-topic images at z 2.5-3.2 stood clear
#: of the folder's 0.9 (histopathology, seed 2).
OFFTOPIC_TAIL = 0.1
OFFTOPIC_MIN_Z = 1.5
#: How many times the mean normalised spacing below it a drop in the tail must be before a folder is
#: judged to hold off-topic images at all, and the share of the folder that mean is taken over (see
#: :func:`tail_stands_out`). Measured on the organised folders of seeds 0-4 at scale 1, with their
#: planted off-topic images taken out: without this test 1.1% of their images were flagged (in 139 of
#: 244 folders), with it 0.45% (39 folders), while 29 of the 30 environments keep off-topic precision
#: and recall >= 0.9 with the images in (4 instead of 3: 0.26% flagged, but 26 of 30 environments).
#: (Measured with the mean neighbour distance alone; with :func:`outlier_scores`' two-part score, 2.5
#: instead of 3 flagged 0.63% instead of 0.52% for one more image found.)
OFFTOPIC_SPACING = 3.0
OFFTOPIC_SPACING_REF = 0.25
#: Folders smaller than this are not tested: their tail is too short to judge, and the largest drop is
#: taken as is. (Tested down to 16 images, the organised folders of seeds 0-1 at scale 0.3 lost off-topic
#: recall: 7 of 12 environments >= 0.9 instead of 11. The price: in the same folders without their
#: off-topic images, 1.3% of the images are flagged, against 0.4% with the test.)
OFFTOPIC_SPACING_MIN_IMAGES = 40
#: A folder whose highest score reaches this holds an off-topic image, whatever the spacing test says
#: (with :data:`OFFTOPIC_MIN_SPREAD`, z 4 is at least 5 times the folder's usual neighbour distance).
#: In a folder of 49 x-rays at scale 0.3 the spacing test missed a lone image at z 5.3 over 2.9, 2.6,
#: 2.4: its reference spacings reach into the folder's bulk. 4 rather than 5 with the two-part score of
#: :func:`outlier_scores`: 3 more of 795 off-topic images found (dermatoscopy seed 3), 3 more of 26,253
#: images flagged in folders without off-topic images (0.52%), scale 0.3 unchanged (1.46%).
OFFTOPIC_CLEAR_Z = 4.0
OFFTOPIC_K = 5
#: Least spread (robust standard deviation of log neighbour distance) an outlier z-score is measured in.
#: A quarter of the folders are tighter than 0.09; there an image a third farther from its neighbours
#: than usual scores z 3 or more. Without the floor, the folders of seeds 0-4 at scale 1 with their
#: off-topic images taken out had 1.4% of their images flagged; with 0.4, 0.45% (39 of 244 folders),
#: and at scale 0.3 1.3% instead of 4.7%, with off-topic detection unchanged (29 of 30 environments
#: >= 0.9). From 0.55 recall falls (dermatoscopy seed 1: 0.84). (Measured with the mean distance alone,
#: before :func:`outlier_scores` took in the k-th distance.)
OFFTOPIC_MIN_SPREAD = 0.4
#: A group of images just below the cut is taken in with the images above it when it stands out by
#: :func:`tail_stands_out`'s spacing (:data:`OFFTOPIC_GROUP_SPACING` times the mean below, and a drop
#: of at least :data:`OFFTOPIC_GROUP_DROP` in log score) and is a clump of its own: each member's
#: nearest fellow is no farther than the folder's median nearest-neighbour distance, and the rest of
#: the folder at least :data:`OFFTOPIC_GROUP_SEPARATION` times farther. Three fundus photographs among
#: vignetted skin images scored 2.1, 2.0, 1.9 over 1.4, under a cut at 4.3 (dermatoscopy seed 0: recall
#: 0.88, 1.00 with the group rule; seeds 0-4 at scale 1: 28 -> 29 of 30 environments >= 0.9); without
#: the clump condition loose groups of ordinary tiles were taken in too (histopathology seeds 2-3:
#: precision 0.79 and 0.86). In the folders without off-topic images the rule flagged nothing.
OFFTOPIC_GROUP_SPACING = 3.0
OFFTOPIC_GROUP_DROP = 0.15
OFFTOPIC_GROUP_SEPARATION = 2.5


def duplicate_groups(images: list[Image.Image], min_similarity: float = DUPLICATE_SIMILARITY) -> list[list[int]]:
    """Groups (size >= 2) of near-identical images, each sorted with the image to keep first.

    See :func:`duplicate_groups_of`, which works from the fingerprints alone.
    """
    if len(images) < 2:
        return []
    fp = Fingerprints(np.stack([fingerprints_of(im) for im in images]))
    return duplicate_groups_of(fp, [im.size for im in images], images.__getitem__, min_similarity)


def duplicate_groups_of(fp: Fingerprints, sizes: list[tuple[int, int]], image: Callable[[int], Image.Image],
                        min_similarity: float = DUPLICATE_SIMILARITY) -> list[list[int]]:
    """Groups (size >= 2) of near-identical images among fingerprints, each sorted with the image to keep first.

    Groups are built by complete linkage: two groups merge only if every pair across them is
    similar. (Single linkage, i.e. union-find over similar pairs, chained 25 distinct fundus
    images into one group through a single blurred copy that resembled them all.)

    The kept image is the likeliest original: see :func:`keep_first`. It needs the pixels of the
    grouped images only, which ``image(i)`` gives (a folder scan re-reads them from disk).
    """
    if len(fp) < 2:
        return []
    group_of: dict[int, list[int]] = {}
    for _, i, j in similar_pairs_bounded(fp, min_similarity):
        gi, gj = group_of.get(i, [i]), group_of.get(j, [j])
        if gi is gj:
            continue
        if all(fp.similarity(a, b) >= min_similarity for a in gi for b in gj):
            merged = gi + gj
            for k in merged:
                group_of[k] = merged
    groups = list({id(g): g for g in group_of.values()}.values())
    if not groups:
        return []
    common_size = Counter(sizes).most_common(1)[0][0]
    members = [k for g in groups for k in g]
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
        pixels = dict(zip(members, pool.map(image, members)))
        tested = [k for g in groups if _needs_jpeg_test(pixels, g, common_size) for k in g]
        errors = dict(zip(tested, pool.map(lambda k: _jpeg_error(pixels[k]), tested)))
    return [keep_first(pixels, g, common_size, errors) for g in groups]


#: A group member whose JPEG re-encoding error is below this share of the group's largest is a re-encoded copy.
#: Measured on luminance (scale 1, seeds 0-1): re-encoded copies 0.00-0.68 of their group's largest, originals
#: 0.86-1.00. 0.35 (on each image's own channels) missed copies of datasets whose originals are JPEG files
#: too (fundus, seed 1: duplicates P/R 0.90).
JPEG_COPY_RATIO = 0.75
#: The qualities the environment's re-encoded copies are saved at.
JPEG_QUALITIES = range(55, 81)


def keep_first(images: Sequence[Image.Image] | Mapping[int, Image.Image], group: list[int],
               common_size: tuple[int, int], errors: Mapping[int, float] | None = None) -> list[int]:
    """The group sorted with the likely original first.

    An original has the folder's most common size (resized copies do not), is not a JPEG
    re-encode (see :func:`_jpeg_error`) and is the sharpest (a crop-and-rescaled copy is softer).
    Size and sharpness alone kept ~1 in 10 same-size JPEG copies, whose block edges read as detail.
    Where at most one member has the common size, size alone decides which is kept, and the
    re-encoding test (26 JPEG encodings per image) is skipped. ``errors`` may hold the members'
    :func:`_jpeg_error` already (computed in parallel by the caller).
    """
    if not _needs_jpeg_test(images, group, common_size):
        return sorted(group, key=lambda i: (images[i].size != common_size, -_sharpness(images[i]), i))
    errors = errors if errors is not None else {k: _jpeg_error(images[k]) for k in group}
    top = max(errors[k] for k in group)
    return sorted(group, key=lambda i: (images[i].size != common_size, errors[i] < JPEG_COPY_RATIO * top,
                                        -_sharpness(images[i]), i))


def _needs_jpeg_test(images: Sequence[Image.Image] | Mapping[int, Image.Image], group: list[int],
                     common_size: tuple[int, int]) -> bool:
    return sum(images[k].size == common_size for k in group) >= 2


def _jpeg_error(img: Image.Image) -> float:
    """Smallest mean grey change when re-encoding as JPEG at the copies' qualities.

    JPEG is nearly idempotent at a fixed quality: an image already decoded from quality q barely
    changes when encoded at q again, while an original (PNG, or JPEG at a high quality) changes.
    Measured on luminance, so that an original stored in grey and a colour copy compare fairly
    (JPEG changes grey images less: on their own channels grey originals read as copies).
    """
    import io

    grey = img.convert("L")
    a = np.asarray(grey, dtype=np.float32)
    best = np.inf
    for q in JPEG_QUALITIES:
        buf = io.BytesIO()
        grey.save(buf, "JPEG", quality=q)
        best = min(best, float(np.abs(np.asarray(Image.open(buf), dtype=np.float32) - a).mean()))
    return best


def _sharpness(img: Image.Image) -> float:
    g = np.asarray(img.convert("L"), dtype=np.float32)
    lap = g[1:-1, 1:-1] * 4 - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


def outlier_scores(features: np.ndarray, k: int = OFFTOPIC_K) -> np.ndarray:
    """How far each image lies from the rest of its folder, as a robust z-score.

    The mean of two z-scores: of the log mean distance to the ``k`` nearest other images, and of the
    log mean distance to the ``k - 1``-th to ``k + 1``-th. The first alone is masked by a small group
    of off-topic images that are each other's nearest neighbours (three fundus photographs in a skin
    folder scored like ordinary skin images); the second reaches past any group smaller than ``k - 1``,
    averaged over three ranks to stay smooth. (Over seeds 0-4 at scale 1: off-topic images missed
    23 -> 8 of 795, false flags 10 -> 9. The ``k``-th distance alone did as well on them but flagged
    more in folders without off-topic images: 0.63% against 0.52%.) The spread each z-score divides
    by is at least :data:`OFFTOPIC_MIN_SPREAD`, so that in a folder of near-identical images an
    ordinary variant does not score like another modality.
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    k = max(1, min(k, n - 1))
    far = min(k + 1, n - 1)
    dist, _ = NearestNeighbors(n_neighbors=far + 1).fit(features).kneighbors(features)
    near_mean = dist[:, 1:k + 1].mean(axis=1)
    past_group = dist[:, max(1, k - 1):far + 1].mean(axis=1)
    return (_robust_z(np.log(near_mean + 1e-6)) + _robust_z(np.log(past_group + 1e-6))) / 2


def _robust_z(raw: np.ndarray) -> np.ndarray:
    med = np.median(raw)
    return (raw - med) / max(np.median(np.abs(raw - med)) * 1.4826, OFFTOPIC_MIN_SPREAD)


def offtopic_indices(images: list[Image.Image], z: float = OFFTOPIC_Z, k: int = OFFTOPIC_K) -> tuple[
        list[int], np.ndarray]:
    """Indices of off-topic images (most outlying first) and every image's score.

    The cut is :func:`offtopic_cut`'s, lowered by :func:`group_cut`.
    """
    return offtopic_indices_of([image_features(im) for im in images], z, k)


def offtopic_indices_of(per_image: list[ImageFeatures], z: float = OFFTOPIC_Z, k: int = OFFTOPIC_K) -> tuple[
        list[int], np.ndarray]:
    """:func:`offtopic_indices` from each image's :func:`~tools.cleaning_features.image_features`."""
    if len(per_image) < 4:
        return [], np.zeros(len(per_image))
    features = feature_matrix_of(per_image)
    scores = outlier_scores(features, k)
    cut = group_cut(scores, features, offtopic_cut(scores, z))
    return [int(i) for i in np.argsort(-scores) if scores[i] >= cut], scores


def offtopic_cut(scores: np.ndarray, z: float = OFFTOPIC_Z) -> float:
    """The least outlier score that is off-topic in this folder.

    The cut is the folder's own: among the top :data:`OFFTOPIC_TAIL` share of outlier scores
    (those above :data:`OFFTOPIC_MIN_Z`), the largest drop between consecutive scores, as a
    ratio, separates the off-topic images from the folder's ordinary spread, provided some drop
    in the tail stands out at all (:func:`tail_stands_out`); anything above ``z`` is flagged
    regardless. (One global z cut missed off-topic images in tight folders and over-flagged in
    spread-out ones: chest X-ray precision 0.57, dermatoscopy recall 0.69 at z 5. The largest
    difference, rather than ratio, stopped after one extreme image in folders such as
    12.9, 7.7, 7.5, 7.3 | 3.1: dermatoscopy recall 0.50 against 0.75 at scale 1, seed 0.)
    """
    top = np.sort(scores)[::-1][: _tail_length(len(scores))]
    above = np.flatnonzero(top[:-1] > OFFTOPIC_MIN_Z)
    if not len(above) or not tail_stands_out(scores):
        return z
    log_top = np.log(np.maximum(top, 0.5))
    gaps = log_top[:-1] - log_top[1:]
    return min(z, float(top[above[np.argmax(gaps[above])]]))


def tail_stands_out(scores: np.ndarray) -> bool:
    """Whether some drop among the folder's highest scores is too large to be its ordinary tail.

    By Renyi's representation, the normalised spacings ``i * (s_(i) - s_(i+1))`` of the largest
    scores of an exponential-tailed sample are independent and alike; a spacing
    :data:`OFFTOPIC_SPACING` times the mean of those below it marks images that do not continue the
    tail. Without this test the largest drop was always taken, in clean folders too. Folders of
    fewer than :data:`OFFTOPIC_SPACING_MIN_IMAGES` images, and folders with a score of at least
    :data:`OFFTOPIC_CLEAR_Z`, always pass.
    """
    n = len(scores)
    srt = np.sort(scores)[::-1]
    if n < OFFTOPIC_SPACING_MIN_IMAGES or srt[0] >= OFFTOPIC_CLEAR_Z:
        return True
    return bool(_drops_standing_out(srt, OFFTOPIC_SPACING))


def _tail_length(n: int) -> int:
    """How many of a folder's highest scores are searched: the top :data:`OFFTOPIC_TAIL` share, plus one below."""
    return max(2, int(np.ceil(OFFTOPIC_TAIL * n)) + 1)


def _reference_length(n: int) -> int:
    """How many of the highest scores the spacing tests look at: the searched tail and a reference below."""
    return min(n, max(_tail_length(n) + 3, int(np.ceil(OFFTOPIC_SPACING_REF * n))))


def _tail_searched(n: int) -> int:
    """How many of the highest scores may start a drop, leaving at least two spacings below each."""
    return min(_tail_length(n), _reference_length(n) - 3)


def _drops_standing_out(srt: np.ndarray, factor: float) -> list[int]:
    """Positions ``j`` in the searched tail of ``srt`` (scores sorted highest first, ``srt[j]`` at least
    :data:`OFFTOPIC_MIN_Z`) whose Renyi normalised spacing ``j * (s_(j) - s_(j+1))`` is at least
    ``factor`` times the mean of the spacings below it."""
    ref = _reference_length(len(srt))
    spacing = np.arange(1, ref) * (srt[:ref - 1] - srt[1:ref])
    out = []
    for j in range(_tail_searched(len(srt))):
        if srt[j] < OFFTOPIC_MIN_Z:
            break
        if spacing[j] >= factor * (spacing[j + 1:].mean() + 1e-9):
            out.append(j)
    return out


def group_cut(scores: np.ndarray, features: np.ndarray, cut: float) -> float:
    """``cut``, lowered to take in a clump of images just below it (see :data:`OFFTOPIC_GROUP_SPACING`).

    The largest drop in the tail separates the most outlying images; a second, smaller drop below
    them can mark a group of off-topic images that are alike, so that each has near neighbours and
    scores lower. A clump that tight and that far from the rest is another kind of image, not the
    folder's ordinary tail, which is scattered.
    """
    n = len(scores)
    if cut >= OFFTOPIC_Z or n < 4:
        return cut
    order = np.argsort(-scores)
    srt = scores[order]
    lowered = cut
    for j in _drops_standing_out(srt, OFFTOPIC_GROUP_SPACING):
        drop = np.log(srt[j] / max(srt[j + 1], 0.5))
        if srt[j] < cut and drop >= OFFTOPIC_GROUP_DROP and _is_clump(features, order[:j + 1], scores < cut):
            lowered = float(srt[j])
    return lowered


def _is_clump(features: np.ndarray, taken: np.ndarray, below_cut: np.ndarray) -> bool:
    """Whether the images of ``taken`` that are below the cut (two or more) form a tight, separate group."""
    from sklearn.metrics import pairwise_distances
    from sklearn.neighbors import NearestNeighbors

    inside = np.zeros(len(features), dtype=bool)
    inside[taken] = True
    group = np.flatnonzero(inside & below_cut)
    rest = features[~inside]
    if len(group) < 2 or len(rest) < 2:
        return False
    within = pairwise_distances(features[group])
    np.fill_diagonal(within, np.inf)
    nearest_fellow = within.min(axis=1).max()
    usual = np.median(NearestNeighbors(n_neighbors=2).fit(rest).kneighbors(rest)[0][:, 1])
    nearest_rest = pairwise_distances(features[group], rest).min()
    return nearest_fellow <= usual and nearest_rest >= OFFTOPIC_GROUP_SEPARATION * nearest_fellow


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
