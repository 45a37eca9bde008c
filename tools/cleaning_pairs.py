"""Near-duplicate pairs among 10k-100k fingerprints without correlating every pair in full.

Correlating every pair of 8-view, 1024-pixel fingerprints (:func:`tools.cleaning_features.similar_pairs`)
cost ~15 x N^2 x 1024 multiply-adds: 45 s at 10k images, 20 min at 50k. Here every pair is first
bounded in a 64-dimensional projection (the fingerprints' leading principal directions, which
hold ~92% of their energy on chest X-rays): for vectors ``x = Px + r_x``, ``x . y <= Px . Py +
|r_x| |r_y|``, and that bound is itself one dot product of the projection with the residual's
length appended. Only pairs whose bound reaches the threshold are correlated in full. The bound
is exact, not approximate: no pair the full search finds is lost, so duplicate quality is unchanged.

The fingerprints are kept as their raw band-pass values in ``float16`` (differences of 8-bit
pixels, so exact), 16 KiB per image, and normalised chunk by chunk when needed.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tools.cleaning_features import similar_pairs
from tools.cleaning_scan import SCAN_WORKERS, Progress

log = logging.getLogger(__name__)

#: Dimensions of the projection the bound is computed in (more: tighter bound, dearer sweep).
PROJECTION_DIMS = 64
#: Fingerprint views sampled to find the projection.
PROJECTION_SAMPLE = 4096
#: Folders up to this many images are correlated in full: below it finding the projection costs more
#: than it saves.
FULL_SEARCH_MAX = 1500
#: Slack below the threshold for the bound, so float32 rounding cannot drop a pair at the threshold.
BOUND_SLACK = 1e-3


class Fingerprints:
    """Raw fingerprints of a folder (images x views x pixels) and their normalisation.

    Normalisation is that of :func:`tools.cleaning_features.normalised_views`: the folder's mean
    uncropped fingerprint is subtracted, then each view is centred and scaled to unit length.
    """

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw
        total = np.zeros(raw.shape[2], dtype=np.float64)
        for start in range(0, len(raw), 4096):
            total += raw[start:start + 4096, 0].astype(np.float64).sum(axis=0)
        self.mean = (total / max(1, len(raw))).astype(np.float32)
        self._cache: dict[int, np.ndarray] = {}

    @classmethod
    def gather(cls, views: list[np.ndarray]) -> Fingerprints:
        """One array of a scan's per-image views; the list is emptied as it is copied (no second copy)."""
        raw = np.empty((len(views), *views[0].shape), dtype=views[0].dtype) if views else np.zeros((0, 1, 1))
        for i in range(len(views)):
            raw[i], views[i] = views[i], None
        return cls(raw)

    def __len__(self) -> int:
        return len(self.raw)

    def normalised(self, idx: np.ndarray | slice) -> np.ndarray:
        """Normalised views of the images ``idx`` (float32)."""
        v = self.raw[idx].astype(np.float32) - self.mean
        v -= v.mean(axis=-1, keepdims=True)
        v /= np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6
        return v

    def one(self, i: int) -> np.ndarray:
        """Normalised views of image ``i``, cached (complete linkage asks for the same few often)."""
        if i not in self._cache:
            self._cache[i] = self.normalised(np.array([i]))[0]
        return self._cache[i]

    def similarity(self, i: int, j: int) -> float:
        """Best correlation of two images over the crop views, either way round."""
        a, b = self.one(i), self.one(j)
        return float(max(a[0] @ b[0], (a[1:] @ b[0]).max(initial=-1.0), (b[1:] @ a[0]).max(initial=-1.0)))


def _projection(fp: Fingerprints, dims: int, seed: int = 0) -> np.ndarray:
    """Orthonormal rows spanning the leading directions of a sample of normalised views."""
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(fp), size=min(len(fp), max(1, PROJECTION_SAMPLE // fp.raw.shape[1])),
                              replace=False))
    sample = fp.normalised(take).reshape(-1, fp.raw.shape[2])
    # any orthonormal basis keeps the bound exact; a randomized SVD finds a good one in a tenth of the
    # time of a full eigen-decomposition (4 s on a loaded machine)
    from sklearn.utils.extmath import randomized_svd

    _, _, vt = randomized_svd(sample, n_components=min(dims, *sample.shape), random_state=seed)
    return np.ascontiguousarray(vt, dtype=np.float32)


def _bounded(fp: Fingerprints, basis: np.ndarray, chunk: int) -> np.ndarray:
    """Each view projected, with its residual length appended (images x views x dims + 1)."""
    out = np.empty((len(fp), fp.raw.shape[1], len(basis) + 1), dtype=np.float32)
    for start in range(0, len(fp), chunk):
        v = fp.normalised(slice(start, start + chunk))
        p = v @ basis.T
        resid = np.maximum((v * v).sum(axis=-1) - (p * p).sum(axis=-1), 0.0)
        out[start:start + chunk, :, :-1] = p
        out[start:start + chunk, :, -1] = np.sqrt(resid)
    return out


def candidate_pairs(fp: Fingerprints, min_similarity: float, dims: int = PROJECTION_DIMS) -> np.ndarray:
    """``(i, j)`` rows (i < j) whose similarity bound reaches ``min_similarity`` (a superset of the pairs).

    Row blocks are swept by :data:`~tools.cleaning_scan.SCAN_WORKERS` threads (NumPy releases the
    GIL in the products and comparisons).
    """
    n = len(fp)
    bound = _bounded(fp, _projection(fp, dims), chunk=1024)
    base = np.ascontiguousarray(bound[:, 0])
    rows = max(64, min(1024, 20_000_000 // max(n, 1)))  # a block's similarity matrix stays ~80 MB
    progress = Progress("near-duplicate search", n)

    def block(start: int) -> np.ndarray:
        stop = min(start + rows, n)
        hit = np.zeros((stop - start, n), dtype=bool)
        for k in range(bound.shape[1]):  # a cropped copy of j matches i's crop view, and vice versa
            hit |= bound[start:stop, k] @ base.T >= min_similarity - BOUND_SLACK
        ii, jj = np.nonzero(hit)
        ii += start
        keep = ii != jj
        return np.stack([np.minimum(ii[keep], jj[keep]), np.maximum(ii[keep], jj[keep])], axis=1)

    found = []
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
        for start, pairs in zip(range(0, n, rows), pool.map(block, range(0, n, rows))):
            found.append(pairs)
            progress.step(min(rows, n - start))
    progress.finish()
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def similar_pairs_bounded(fp: Fingerprints, min_similarity: float, batch: int = 2048) -> list[tuple[float, int, int]]:
    """``(similarity, i, j)`` for pairs (i < j) that correlate at least ``min_similarity`` in some view.

    The same pairs and similarities as :func:`tools.cleaning_features.similar_pairs`, sorted most
    similar first, but only the candidates of :func:`candidate_pairs` are correlated in full.
    """
    if len(fp) <= FULL_SEARCH_MAX:
        return similar_pairs(fp.normalised(slice(None)), min_similarity)
    cand = candidate_pairs(fp, min_similarity)
    log.debug("%d candidate pairs among %d images", len(cand), len(fp))
    out: list[tuple[float, int, int]] = []
    for start in range(0, len(cand), batch):
        i, j = cand[start:start + batch, 0], cand[start:start + batch, 1]
        a, b = fp.normalised(i), fp.normalised(j)
        s = np.einsum("np,np->n", a[:, 0], b[:, 0])
        s = np.maximum(s, np.einsum("nkp,np->nk", a[:, 1:], b[:, 0]).max(axis=1))
        s = np.maximum(s, np.einsum("nkp,np->nk", b[:, 1:], a[:, 0]).max(axis=1))
        ok = s >= min_similarity
        out += [(float(x), int(p), int(q)) for x, p, q in zip(s[ok], i[ok], j[ok])]
    return sorted(out, reverse=True)
