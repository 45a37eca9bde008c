"""Near-duplicate pairs among 10k-100k fingerprints without correlating every pair.

Correlating every pair of 8-view, 1024-pixel fingerprints (:func:`tools.cleaning_features.similar_pairs`)
costs ~15 x N^2 x 1024 multiply-adds: 45 s at 10k images, 20 min at 50k. Any all-pairs sweep is
quadratic (an exact bound in a 64-d projection, the previous search, still took ~15 s at 10k and
would dominate at 50k), so folders above :data:`FULL_SEARCH_MAX` images are searched approximately
and verified exactly:

1. every view is projected on the fingerprints' leading principal directions, with the residual's
   length appended: for unit vectors ``x = Px + r_x``, ``x . y <= Px . Py + |r_x| |r_y|``, so the
   inner product of two such 65-d vectors bounds the true correlation from above;
2. an inverted-file index (faiss ``IndexIVFFlat``, inner product) over every image's uncropped view
   is queried with all eight views of every image for their :data:`NEIGHBOURS` highest bounds
   (cost ~N log N, not N^2); a cropped copy's uncropped view meets its original's crop view;
3. candidate pairs whose bound reaches the threshold are correlated exactly over the full views.

The threshold itself rises with the folder's chance similarity: see :func:`chance_threshold`.

The search is approximate only in step 2 (a true pair outside a query's probed cells or top list is
missed); on the 10k-image benchmark folder every pair at or above 0.95 that the exact search finds
was found. Memory is linear: the normalised views (``float16``, 16 KiB an image) and their 65-d
projections (2 KiB an image); no N x N matrix is formed.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from tools.cleaning_features import similar_pairs
from tools.cleaning_scan import SCAN_WORKERS, Progress

log = logging.getLogger(__name__)

#: Dimensions of the projection the bound is computed in.
PROJECTION_DIMS = 64
#: Fingerprint views sampled to find the projection.
PROJECTION_SAMPLE = 2048
#: Folders up to this many images are correlated in full, exactly: below it the index costs more
#: than it saves, and the environments' folders (a few hundred to ~1,500 images) keep their exact search.
FULL_SEARCH_MAX = 1500
#: Slack below the threshold for the bound, so float rounding cannot drop a pair at the threshold.
BOUND_SLACK = 1e-3
#: Neighbours each view's query returns (itself included for the uncropped view).
NEIGHBOURS = 6
#: Inverted lists per square root of the folder's size, and lists probed per query. With 16 probes of
#: 4 sqrt(N) lists a query scans ~4 sqrt(N) vectors; near-duplicates (correlation > 0.95) share or
#: neighbour a cell.
LISTS_PER_SQRT = 4
PROBES = 16
#: Images normalised and projected per block (a block's float32 views are ~32 MiB).
BLOCK = 1024
#: Images whose nearest-neighbour similarity is measured for :func:`chance_threshold` (all, in smaller
#: folders). A fixed number: the quartiles it gives do not depend on the folder's size.
NEAREST_SAMPLE = 2000
#: How many robust standard deviations above the median nearest-neighbour similarity (on the
#: ``-log(1 - s)`` scale) a pair must reach to be told from two distinct images that look alike by chance.
CHANCE_Z = 3.5


@dataclass
class PairSearch:
    """What a near-duplicate search found.

    Attributes:
        pairs: ``(similarity, i, j)``, i < j, at or above the searched threshold, most similar first.
        nearest: exact highest similarity to any other image, for a sample of the folder's images.
    """

    pairs: list[tuple[float, int, int]]
    nearest: np.ndarray


class Fingerprints:
    """Normalised fingerprints of a folder (images x views x pixels, ``float16``).

    Normalisation is that of :func:`tools.cleaning_features.normalised_views`: the folder's mean
    uncropped fingerprint is subtracted, then each view is centred and scaled to unit length. It is
    done once, block by block, in place when ``raw`` is ``float16`` (a 50k-image folder's fingerprints
    are 800 MiB: a second copy would double the finder's memory).
    """

    def __init__(self, raw: np.ndarray) -> None:
        total = np.zeros(raw.shape[2], dtype=np.float64)
        for start in range(0, len(raw), 4096):
            total += raw[start:start + 4096, 0].astype(np.float64).sum(axis=0)
        self.mean = (total / max(1, len(raw))).astype(np.float32)
        self.views = raw if raw.dtype == np.float16 else np.empty(raw.shape, dtype=np.float16)

        def block(start: int) -> None:
            self.views[start:start + BLOCK] = self._normalise(raw[start:start + BLOCK])

        with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
            list(pool.map(block, range(0, len(raw), BLOCK)))
        self._cache: dict[int, np.ndarray] = {}

    def _normalise(self, raw: np.ndarray) -> np.ndarray:
        v = raw.astype(np.float32) - self.mean
        v -= v.mean(axis=-1, keepdims=True)
        v /= np.linalg.norm(v, axis=-1, keepdims=True) + 1e-6
        return v

    def __len__(self) -> int:
        return len(self.views)

    def normalised(self, idx: np.ndarray | slice) -> np.ndarray:
        """Normalised views of the images ``idx`` (float32)."""
        return self.views[idx].astype(np.float32)

    def one(self, i: int) -> np.ndarray:
        """Normalised views of image ``i``, cached (complete linkage asks for the same few often)."""
        if i not in self._cache:
            self._cache[i] = self.normalised(np.array([i]))[0]
        return self._cache[i]

    def similarity(self, i: int, j: int) -> float:
        """Best correlation of two images over the crop views, either way round."""
        a, b = self.one(i), self.one(j)
        return float(max(a[0] @ b[0], (a[1:] @ b[0]).max(initial=-1.0), (b[1:] @ a[0]).max(initial=-1.0)))

    def similarities(self, i: np.ndarray, j: np.ndarray, batch: int = 1024) -> np.ndarray:
        """:meth:`similarity` of the pairs ``(i[k], j[k])``, in batches (batched matrix products)."""
        out = np.empty(len(i), dtype=np.float32)
        for start in range(0, len(i), batch):
            a, b = self.normalised(i[start:start + batch]), self.normalised(j[start:start + batch])
            ab = np.matmul(a, b[:, 0, :, None])[..., 0]  # every view of a against b's uncropped view
            ba = np.matmul(b[:, 1:], a[:, 0, :, None])[..., 0]
            out[start:start + batch] = np.maximum(ab.max(axis=1), ba.max(axis=1, initial=-1.0))
        return out


class FingerprintStore:
    """A scan's fingerprints, written into blocks of :data:`BLOCK` images as the scan returns them.

    A scan that kept one small array per image and stacked them at the end held every fingerprint
    twice at the peak (2.0 GiB for 50k images, of which 0.8 GiB were the stacked copy): the small
    arrays' memory is not returned to the system when freed. Blocks are allocations of their own
    (16 MiB), freed one by one as :meth:`fingerprints` copies them out.
    """

    def __init__(self) -> None:
        self._blocks: list[np.ndarray | None] = []
        self._count = 0
        self._lock = threading.Lock()

    def put(self, views: np.ndarray) -> int:
        """Store one image's fingerprints (made here or in a decoding process); return its slot."""
        with self._lock:
            slot, self._count = self._count, self._count + 1
            if slot // BLOCK == len(self._blocks):
                self._blocks.append(np.empty((BLOCK, *views.shape), dtype=np.float16))
            block = self._blocks[slot // BLOCK]
        block[slot % BLOCK] = views
        return slot

    def fingerprints(self, slots: list[int]) -> Fingerprints:
        """:class:`Fingerprints` of the images in ``slots`` order (what :meth:`put` returned for each)."""
        slots_a = np.asarray(slots, dtype=np.int64)
        shape = self._blocks[0].shape[1:] if self._blocks else (1, 1)
        out = np.empty((len(slots_a), *shape), dtype=np.float16)
        for b in range(len(self._blocks)):
            rows = np.flatnonzero(slots_a // BLOCK == b)
            out[rows] = self._blocks[b][slots_a[rows] % BLOCK]
            self._blocks[b] = None
        return Fingerprints(out)


def _projection(fp: Fingerprints, dims: int, seed: int = 0) -> np.ndarray:
    """Orthonormal rows spanning the leading directions of a sample of normalised views."""
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(len(fp), size=min(len(fp), max(1, PROJECTION_SAMPLE // fp.views.shape[1])),
                              replace=False))
    sample = fp.normalised(take).reshape(-1, fp.views.shape[2])
    # any orthonormal basis keeps the bound exact; a randomized SVD with two power iterations finds a
    # good one in a fraction of the time of a full eigen-decomposition
    from sklearn.utils.extmath import randomized_svd

    _, _, vt = randomized_svd(sample, n_components=min(dims, *sample.shape), n_iter=2, random_state=seed)
    return np.ascontiguousarray(vt, dtype=np.float32)


def _bounded(fp: Fingerprints, basis: np.ndarray) -> np.ndarray:
    """Each view projected, with its residual length appended (images x views x dims + 1), in threads."""
    out = np.empty((len(fp), fp.views.shape[1], len(basis) + 1), dtype=np.float32)

    def block(start: int) -> None:
        v = fp.normalised(slice(start, start + BLOCK))
        p = v @ basis.T
        out[start:start + BLOCK, :, :-1] = p
        out[start:start + BLOCK, :, -1] = np.sqrt(np.maximum((v * v).sum(axis=-1) - (p * p).sum(axis=-1), 0.0))

    with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
        list(pool.map(block, range(0, len(fp), BLOCK)))
    return out


def candidate_pairs(fp: Fingerprints, min_similarity: float, dims: int = PROJECTION_DIMS,
                    neighbours: int = NEIGHBOURS, sample: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)`` rows (i < j) among each view's nearest neighbours whose similarity bound reaches
    ``min_similarity`` (see the module docstring), and for the images of ``sample`` the
    (i, j) rows of their uncropped view's three nearest others, whatever their bound."""
    import faiss

    n = len(fp)
    views = fp.views.shape[1]
    bound = _bounded(fp, _projection(fp, dims))
    d = bound.shape[2]
    base = np.ascontiguousarray(bound[:, 0])
    lists = max(1, min(int(LISTS_PER_SQRT * np.sqrt(n)), n // 40))
    faiss.omp_set_num_threads(SCAN_WORKERS)
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.cp.max_points_per_centroid = 64  # k-means on a sample: the cells need not be optimal
    index.train(base)
    index.add(base)
    index.nprobe = min(PROBES, lists)
    sampled = np.zeros(n, dtype=bool)
    sampled[sample if sample is not None else []] = True
    progress = Progress("near-duplicate search", n)
    found, near = [], []
    rows = 2048
    for start in range(0, n, rows):
        q = np.ascontiguousarray(bound[start:start + rows].reshape(-1, d))
        sims, hits = index.search(q, min(neighbours, n))
        query = np.repeat(np.arange(start, start + len(q) // views), views)[:, None]
        other = (hits >= 0) & (hits != query)
        keep = other & (sims >= min_similarity - BOUND_SLACK)
        a, b = np.broadcast_to(query, hits.shape)[keep], hits[keep]
        found.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
        first = (np.cumsum(other, axis=1) <= 3) & other & sampled[query] & (np.arange(len(q)) % views == 0)[:, None]
        near.append(np.stack([np.broadcast_to(query, hits.shape)[first], hits[first]], axis=1))
        progress.step(len(q) // views)
    progress.finish()
    pairs = np.concatenate(found) if found else np.zeros((0, 2), dtype=np.int64)
    return (np.unique(pairs, axis=0) if len(pairs) else pairs), np.concatenate(near)


def search(fp: Fingerprints, min_similarity: float) -> PairSearch:
    """Pairs that correlate at least ``min_similarity`` in some view, and a sample's nearest similarities.

    Up to :data:`FULL_SEARCH_MAX` images, exactly the pairs of :func:`tools.cleaning_features.similar_pairs`
    (and every image's nearest similarity); above, the candidates of :func:`candidate_pairs`
    correlated exactly, and :data:`NEAREST_SAMPLE` images' nearest similarities among their
    uncropped view's candidates.
    """
    n = len(fp)
    if n <= FULL_SEARCH_MAX:
        nearest = np.empty(n, dtype=np.float32)
        return PairSearch(similar_pairs(fp.normalised(slice(None)), min_similarity, nearest=nearest), nearest)
    sample = np.random.default_rng(0).choice(n, size=min(n, NEAREST_SAMPLE), replace=False)
    cand, near = candidate_pairs(fp, min_similarity, sample=sample)
    log.debug("%d candidate pairs among %d images", len(cand), n)
    s = fp.similarities(cand[:, 0], cand[:, 1])
    ok = s >= min_similarity
    pairs = sorted(((float(x), int(p), int(q)) for x, p, q in zip(s[ok], cand[ok, 0], cand[ok, 1])), reverse=True)
    nearest = np.full(n, -1.0, dtype=np.float32)
    np.maximum.at(nearest, near[:, 0], fp.similarities(near[:, 0], near[:, 1]))
    return PairSearch(pairs, nearest[np.sort(sample)])


def chance_threshold(nearest: np.ndarray, z: float = CHANCE_Z) -> float:
    """The similarity that distinct images of this folder reach by chance only rarely.

    In a folder of look-alike images (every chest X-ray shares the anatomy) each image's nearest
    other image is more alike the more images there are: on synthetic X-rays the median nearest
    similarity is 0.890 at 10k images and 0.904 at 50k, and 348 of 50k distinct images had one at
    0.96 or above (the default threshold), so that a fixed threshold lost precision as folders grew
    (0.86 at 50k). Measured on ``u = -log(1 - s)``, where the nearest similarities of distinct images
    spread about normally, the threshold is the median plus :data:`CHANCE_Z` robust standard
    deviations (from the quartiles, which the copies, a few percent of a folder, do not move):
    0.967 at 10k and 0.973 at 50k there, with 1 and 2 distinct images above it; true copies
    correlate 0.998 and more. Small folders' nearest similarities are lower, so their threshold
    stays the caller's (0.96 by default).
    """
    u = -np.log(np.clip(1.0 - nearest[nearest > -1.0], 1e-6, None))
    if len(u) < 20:
        return -1.0
    q25, q50, q75 = np.percentile(u, [25, 50, 75])
    return float(1.0 - np.exp(-(q50 + z * (q75 - q25) / 1.349)))
