"""Near-duplicate groups: which images of a folder are copies of one another, and which copy to keep.

Similarity is the correlation of band-pass perceptual fingerprints (crop-tolerant;
:mod:`tools.cleaning_features`), searched by :mod:`tools.cleaning_pairs`; groups are built by
complete linkage and one image per group is kept. (Plain pHash/dHash was measured first: on
synthetic chest X-rays, where every image shares the same anatomy, a 64-bit pHash put ~950 distinct
images within the radius that caught the copies, and it missed trimmed-and-rescaled copies.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from tools.cleaning_features import fingerprints_of
from tools.cleaning_pairs import Fingerprints, chance_threshold, search
from tools.cleaning_scan import SCAN_WORKERS

#: Default fingerprint correlation at or above which two images are near-duplicates. 0.96 with the
#: pixel-exact crop views of ``CROP_MARGINS``: at 0.93 distinct MRI and X-ray images were grouped
#: (precision 0.87 and 0.83); at 0.95 three distinct chest X-rays correlated 0.951-0.956 (x-ray, seed 2:
#: precision 0.945). At 0.96 all six environments at scale 1, seeds 0-2, have precision and recall >= 0.957.
DUPLICATE_SIMILARITY = 0.96


@dataclass(frozen=True)
class DuplicateGroups:
    """Near-duplicate groups (each sorted with the image to keep first) and the similarity that made them.

    ``threshold`` is the caller's least similarity, raised to the folder's
    :func:`~tools.cleaning_pairs.chance_threshold` where distinct images reach that by chance.
    """

    groups: list[list[int]]
    threshold: float


def duplicate_groups(images: list[Image.Image], min_similarity: float = DUPLICATE_SIMILARITY) -> list[list[int]]:
    """Groups (size >= 2) of near-identical images, each sorted with the image to keep first.

    See :func:`find_duplicate_groups`, which works from the fingerprints alone.
    """
    if len(images) < 2:
        return []
    fp = Fingerprints(np.stack([fingerprints_of(im) for im in images]))
    return find_duplicate_groups(fp, [im.size for im in images], images.__getitem__, min_similarity).groups


def find_duplicate_groups(fp: Fingerprints, sizes: list[tuple[int, int]], image: Callable[[int], Image.Image],
                          min_similarity: float = DUPLICATE_SIMILARITY) -> DuplicateGroups:
    """Groups (size >= 2) of near-identical images among fingerprints, each sorted with the image to keep first.

    Two images are near-identical when they correlate at least ``min_similarity`` and at least the
    folder's chance similarity (:func:`~tools.cleaning_pairs.chance_threshold`), which rises with the
    folder's size and look-alikeness: at 50k chest X-rays a fixed 0.96 grouped ~170 pairs of
    distinct images (precision 0.86).

    Groups are built by complete linkage: two groups merge only if every pair across them is
    similar. (Single linkage, i.e. union-find over similar pairs, chained 25 distinct fundus
    images into one group through a single blurred copy that resembled them all.)

    The kept image is the likeliest original: see :func:`keep_first`. It needs the pixels of the
    grouped images only, which ``image(i)`` gives (a folder scan re-reads them from disk).
    """
    if len(fp) < 2:
        return DuplicateGroups([], min_similarity)
    found = search(fp, min_similarity)
    threshold = max(min_similarity, chance_threshold(found.nearest))
    group_of: dict[int, list[int]] = {}
    for s, i, j in found.pairs:
        if s < threshold:
            break  # most similar first
        gi, gj = group_of.get(i, [i]), group_of.get(j, [j])
        if gi is gj:
            continue
        if all(fp.similarity(a, b) >= threshold for a in gi for b in gj):
            merged = gi + gj
            for k in merged:
                group_of[k] = merged
    groups = list({id(g): g for g in group_of.values()}.values())
    if not groups:
        return DuplicateGroups([], threshold)
    common_size = Counter(sizes).most_common(1)[0][0]
    members = [k for g in groups for k in g]
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
        pixels = dict(zip(members, pool.map(image, members)))
        tested = [k for g in groups if _needs_jpeg_test(pixels, g, common_size) for k in g]
        errors = dict(zip(tested, pool.map(lambda k: _jpeg_error(pixels[k]), tested)))
    return DuplicateGroups([keep_first(pixels, g, common_size, errors) for g in groups], threshold)


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
