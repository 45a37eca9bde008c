"""What the cleaning detectors compute from pixels: perceptual fingerprints and hand-made features.

No pretrained weights are allowed, so off-topic and label-error detection work on features that
describe an image the way the modalities differ: colour, hue and saturation, grey-level statistics
and histogram, coarse spatial layout (an 8x8 thumbnail), edge-orientation histograms on a grid
(shape), and the radial power spectrum (texture). A grey image in a colour folder is judged on its
grey-level content: colour features of images stored without colour are replaced by the folder
median (see :func:`feature_matrix`).
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
from PIL import Image

#: Side images are reduced to before features are computed (fast, and enough for these cues).
FEATURE_SIDE = 64


#: Crop margins (fraction of the side) a copy may have been trimmed by before being rescaled. The
#: step is 0.75% so that on small images (64-96 px) some view lines up with any whole-pixel trim of
#: 2-6%: one pixel of misalignment at 96 px drops the correlation of a true copy to 0.84 (measured),
#: below the duplicate threshold.
CROP_MARGINS = (0.0, 0.02, 0.0275, 0.035, 0.0425, 0.05, 0.0575, 0.065)
FINGERPRINT_SIDE = 32


#: Standard deviation (in thumbnail pixels) of the blur whose difference makes the band-pass.
FINGERPRINT_BLUR = 1.5


def fingerprint_views(img: Image.Image) -> np.ndarray:
    """Band-pass 32x32 grey thumbnails of the image and of centre crops (one row per margin).

    The band-pass (image minus its blur) keeps the detail that tells two images of the same
    anatomy apart; the crop views let a trimmed-and-rescaled copy line up with its original.

    Computed as matrix products on the decoded grey array: each view is ``Ry @ g @ Rx`` with the
    resampling weights of Pillow's antialiased bilinear resize of that crop, and the blur is a
    matrix of Pillow's three-pass extended box blur, both cached per image size. This gives
    Pillow's crop + resize + ``GaussianBlur`` to within its 8-bit rounding (at most 2 grey levels,
    measured on all six modalities), at a third of the cost: eight crops, resizes and blurs of
    ``Image`` objects took ~1.2 ms an image, most of the duplicate finder's time.
    """
    g = np.asarray(img.convert("L"), dtype=np.float32)
    h, w = g.shape
    rows, cols_t = _view_resamplers(w, h)
    v = np.matmul((rows @ g).reshape(len(CROP_MARGINS), FINGERPRINT_SIDE, w), cols_t)
    blur = _blur_matrix(FINGERPRINT_SIDE, FINGERPRINT_BLUR)
    return (v - blur @ v @ blur.T).reshape(len(CROP_MARGINS), FINGERPRINT_SIDE * FINGERPRINT_SIDE)


@cache
def _view_resamplers(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Row weights of every view stacked (views x side, h), and column weights transposed (views, w, side)."""
    rows, cols = [], []
    for f in CROP_MARGINS:
        m = round(min(w, h) * f)
        rows.append(_bilinear_weights(h, m, h - m, FINGERPRINT_SIDE))
        cols.append(_bilinear_weights(w, m, w - m, FINGERPRINT_SIDE))
    rows_all = np.concatenate(rows).astype(np.float32)
    return rows_all, np.ascontiguousarray(np.stack(cols).transpose(0, 2, 1), dtype=np.float32)


def _bilinear_weights(size: int, lo: int, hi: int, out: int) -> np.ndarray:
    """(out, size) weights of Pillow's antialiased bilinear resampling of pixels ``lo..hi-1`` to ``out``.

    As Pillow's ``precompute_coeffs``: a triangle filter widened by the reduction factor, centred on
    each output pixel's centre, clipped to the crop and normalised.
    """
    scale = (hi - lo) / out
    widen = max(scale, 1.0)
    weights = np.zeros((out, size))
    for o in range(out):
        centre = (o + 0.5) * scale
        first = max(int(centre - widen + 0.5), 0)
        last = min(int(centre + widen + 0.5), hi - lo)
        w = np.maximum(0.0, 1.0 - np.abs((np.arange(first, last) - centre + 0.5) / widen))
        weights[o, lo + first:lo + last] = w / w.sum()
    return weights


@cache
def _blur_matrix(n: int, sigma: float, passes: int = 3) -> np.ndarray:
    """(n, n) matrix of Pillow's ``GaussianBlur(sigma)`` along one axis: ``passes`` extended box blurs.

    The box radius is Pillow's (fractional: the outermost taps weigh the fraction), chosen so the
    passes' variance is ``sigma`` squared; edges repeat the border pixel.
    """
    s2 = sigma * sigma / passes
    inner = np.floor((np.sqrt(12 * s2 + 1) - 1) / 2)
    radius = inner + (2 * inner + 1) * (inner * (inner + 1) - 3 * s2) / (6 * (s2 - (inner + 1) ** 2))
    box = np.zeros((n, n))
    reach = int(inner)
    for i in range(n):
        for d in range(-reach - 1, reach + 2):
            box[i, min(max(i + d, 0), n - 1)] += 1.0 if abs(d) <= reach else radius - reach
    box /= 2 * radius + 1
    return np.linalg.matrix_power(box, passes).astype(np.float32)


def fingerprints_of(img: Image.Image) -> np.ndarray:
    """:func:`fingerprint_views` as ``float16`` (within 0.13 of a grey level: ample for correlation), half the memory."""
    return fingerprint_views(img).astype(np.float16)


def normalised_views(views: np.ndarray) -> np.ndarray:
    """Fingerprints with the folder's mean removed, centred and scaled to unit length.

    What every image shares (the anatomy, a scanner pattern) must not make two images alike, so
    the folder's mean uncropped fingerprint is subtracted before correlating.
    """
    v = views - views[:, 0].mean(axis=0)
    v = v - v.mean(axis=2, keepdims=True)
    v /= np.linalg.norm(v, axis=2, keepdims=True) + 1e-6
    return v.astype(np.float32)


def pair_similarity(v: np.ndarray, i: int, j: int) -> float:
    """Best correlation of two normalised fingerprints over the crop views (either way round)."""
    s = float(v[i, 0] @ v[j, 0])
    for k in range(1, v.shape[1]):
        s = max(s, float(v[i, k] @ v[j, 0]), float(v[j, k] @ v[i, 0]))
    return s


def similar_pairs(views: np.ndarray, min_similarity: float, chunk: int = 1024,
                  nearest: np.ndarray | None = None) -> list[tuple[float, int, int]]:
    """``(similarity, i, j)`` for pairs (i < j) that correlate at least ``min_similarity`` in some view.

    ``views`` is (images, margins, pixels), already :func:`normalised_views`. Row chunks keep
    memory bounded at 10k+ images. Sorted most similar first. ``nearest``, if given (one float per
    image), receives each image's highest similarity to any other image.
    """
    v = views
    base = np.ascontiguousarray(v[:, 0])
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, len(v), chunk):
        stop = min(start + chunk, len(v))
        sim = base[start:stop] @ base.T
        for k in range(1, v.shape[1]):  # a cropped copy of j matches i's crop view, and vice versa
            sim = np.maximum(sim, v[start:stop, k] @ base.T)
            sim = np.maximum(sim, (v[:, k] @ base[start:stop].T).T)
        if nearest is not None:
            sim[np.arange(stop - start), np.arange(start, stop)] = -1.0
            nearest[start:stop] = sim.max(axis=1, initial=-1.0)
        ii, jj = np.nonzero(sim >= min_similarity)
        for i, j in zip(ii, jj):
            a, b = int(i) + start, int(j)
            if a != b:
                pairs[(min(a, b), max(a, b))] = float(sim[i, j])
    return sorted(((s, i, j) for (i, j), s in pairs.items()), reverse=True)


def is_grey(img: Image.Image) -> bool:
    """Stored without colour: mode ``L`` or three equal channels."""
    if img.mode == "L":
        return True
    a = np.asarray(img.resize((32, 32)), dtype=np.int16)
    return bool(np.abs(a[..., 0] - a[..., 1]).max() <= 2 and np.abs(a[..., 1] - a[..., 2]).max() <= 2)


def _hog(g: np.ndarray, cells: int = 4, bins: int = 8) -> np.ndarray:
    gy, gx = np.gradient(g)
    mag = np.hypot(gx, gy)
    ang = (np.arctan2(gy, gx) % np.pi) / np.pi * bins
    idx = np.minimum(ang.astype(int), bins - 1)
    s = g.shape[0] // cells
    cell = _hog_cells(g.shape[0], cells)
    m, b = mag[:cells * s, :cells * s], idx[:cells * s, :cells * s]
    out = np.bincount((cell * bins + b).ravel(), weights=m.ravel(), minlength=cells * cells * bins)
    out = out.reshape(cells, cells, bins).astype(np.float32)
    out /= out.sum(axis=2, keepdims=True) + 1e-6
    return out.ravel()


@cache
def _hog_cells(n: int, cells: int) -> np.ndarray:
    """Which grid cell each pixel of an ``n`` x ``n`` image falls in (row-major), for one bincount."""
    s = n // cells
    yy, xx = np.indices((cells * s, cells * s))
    return (yy // s) * cells + xx // s


def _spectrum(g: np.ndarray, bands: int = 8) -> np.ndarray:
    f = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    band, counts = _radial_bands(g.shape[0], bands)
    p = np.bincount(band.ravel(), weights=f.ravel(), minlength=bands + 1)[:bands] / counts
    return np.log1p(p / (p.sum() + 1e-9) * 100)


@cache
def _radial_bands(n: int, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """Each frequency's radial band (``bands`` for those outside the unit radius) and each band's size."""
    yy, xx = np.indices((n, n))
    r = np.hypot(yy - n / 2, xx - n / 2) / (n / 2)
    edges = np.linspace(0, 1, bands + 1)
    band = np.full((n, n), bands)
    for i, (lo, hi) in enumerate(itertools.pairwise(edges)):
        band[(r >= lo) & (r < hi)] = i
    return band, np.bincount(band.ravel(), minlength=bands + 1)[:bands].astype(np.float64)


#: Feature blocks, in order; the first :data:`COLOUR_BLOCKS` describe colour (imputed for grey images).
BLOCKS = ("colour", "hue_saturation", "foreground", "grey_stats", "grey_histogram", "thumbnail", "hog", "spectrum")
COLOUR_BLOCKS = 3
#: Bound on a robustly standardised feature (in IQRs from the folder median). Without it, a feature
#: that is near-constant in a folder (the share of white pixels in MRI, say) turned a small on-topic
#: difference into a distance larger than another modality's: MRI precision 0.88 at scale 1, seed 0.
#: Over seeds 0-4 the bound took the off-topic ranking (share of off-topic images among a folder's
#: top-scored, as many as it has) from 0.985 to 0.999 on average, on the folders the cleaning-quality
#: benchmark organises (``benchmarks/cleaning_quality.py``), read at 64 px.
FEATURE_CLIP = 12.0


def image_blocks(img: Image.Image) -> dict[str, np.ndarray]:
    """A fixed-length description of one image, as named blocks (see :data:`BLOCKS`).

    Grey-level blocks use luminance (ITU-R 601, PIL's ``L``), so that an image stored in grey and
    its colour original describe alike. The hue-saturation blocks tell apart modalities of similar
    layout (a fundus photograph among vignetted skin images is redder and more saturated).
    """
    small = img.convert("RGB").resize((FEATURE_SIDE, FEATURE_SIDE), Image.BILINEAR)
    # channels first and contiguous: NumPy reduces over a long axis far faster than over 3 values
    chans = np.moveaxis(np.asarray(small, dtype=np.float32) / 255, 2, 0).reshape(3, -1).copy()
    g = np.asarray(small.convert("L"), dtype=np.float32) / 255
    mx = np.maximum(np.maximum(chans[0], chans[1]), chans[2])
    mn = np.minimum(np.minimum(chans[0], chans[1]), chans[2])
    sat = (mx - mn) / (mx + 1e-3)
    gy, gx = np.gradient(g)
    grad = np.hypot(gx, gy)
    thumb = small.convert("L").resize((8, 8), Image.BOX)
    return {
        "colour": np.array([*chans.mean(axis=1), *chans.std(axis=1), sat.mean()]),
        **_hue_saturation(small),
        "grey_stats": np.array([g.mean(), g.std(), (g < 0.05).mean(), (g > 0.95).mean(), grad.mean(), grad.std()]),
        "grey_histogram": _uniform_histogram(g.ravel(), 16) / g.size,
        "thumbnail": np.asarray(thumb, dtype=np.float32).ravel() / 255,
        "hog": _hog(g),
        "spectrum": _spectrum(g),
    }


def _uniform_histogram(x: np.ndarray, bins: int) -> np.ndarray:
    """Counts of values in [0, 1] over ``bins`` equal bins, the last one closed (as ``np.histogram``)."""
    return np.bincount(_uniform_bin(x, bins), minlength=bins)


def _uniform_bin(x: np.ndarray, bins: int) -> np.ndarray:
    return np.minimum((x.astype(np.float64) * bins).astype(np.intp), bins - 1)


def _hue_saturation(small: Image.Image) -> dict[str, np.ndarray]:
    """A hue x saturation histogram (square-rooted), and hue, saturation and value of the lit pixels."""
    h, s, v = np.moveaxis(np.asarray(small.convert("HSV"), dtype=np.float32) / 255, 2, 0).copy()
    hist = np.bincount(_uniform_bin(h.ravel(), 8) * 3 + _uniform_bin(s.ravel(), 3), minlength=24) / h.size
    lit = v > 0.15  # black borders and vignettes carry no colour
    if lit.sum() < 10:
        lit = np.ones_like(lit)
    angle = 2 * np.pi * h[lit]
    fg = [np.cos(angle).mean(), np.sin(angle).mean(), s[lit].mean(), s[lit].std(), v[lit].mean(),
          v[lit].std(), lit.mean()]
    return {"hue_saturation": np.sqrt(hist), "foreground": np.array(fg)}


#: What :func:`feature_matrix_of` needs of one image: its feature blocks and whether it is stored in grey.
ImageFeatures = tuple[dict[str, np.ndarray], bool]


def image_features(img: Image.Image) -> ImageFeatures:
    """The per-image part of :func:`feature_matrix` (a scan keeps this, not the pixels)."""
    return image_blocks(img), is_grey(img)


def feature_matrix(images: list[Image.Image]) -> np.ndarray:
    """Features of every image, standardised within the folder: :func:`feature_matrix_of` their features."""
    return feature_matrix_of([image_features(im) for im in images])


def feature_matrix_of(per_image: list[ImageFeatures]) -> np.ndarray:
    """Features of every image, standardised within the folder so that each block counts once.

    Each column is robustly standardised (median / IQR) and bounded by :data:`FEATURE_CLIP`; each
    block is then divided by the square root of its length, so that a distance weighs the 128
    HOG numbers as one cue, like the 7 colour numbers. (Unweighted, HOG and the thumbnail drowned
    colour: fundus photographs in skin folders ranked below ordinary skin images.)

    Grey images in a folder that is mostly in colour get the median colour blocks of the folder:
    a stored-as-grey image of the right modality should not look off-topic for lacking colour, and
    its content still decides.
    """
    grey = np.array([g for _, g in per_image])
    impute = grey.any() and grey.mean() < 0.5
    out = []
    for b, name in enumerate(BLOCKS):
        x = np.stack([blocks[name] for blocks, _ in per_image]).astype(np.float64)
        if impute and b < COLOUR_BLOCKS:
            x[grey] = np.median(x[~grey], axis=0)
        out.append(np.clip(_standardise(x), -FEATURE_CLIP, FEATURE_CLIP) / np.sqrt(x.shape[1]))
    return np.concatenate(out, axis=1)


def _standardise(x: np.ndarray) -> np.ndarray:
    med = np.median(x, axis=0)
    iqr = np.subtract(*np.percentile(x, [75, 25], axis=0))
    scale = np.where(iqr > 1e-6, iqr, x.std(axis=0) + 1e-6)
    return (x - med) / scale
