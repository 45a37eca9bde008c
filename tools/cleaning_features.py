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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from tools.imageio import UnreadableImage, is_image_name, read_image

#: Side images are reduced to before features are computed (fast, and enough for these cues).
FEATURE_SIDE = 64


@dataclass
class FolderImages:
    """The images of one organised folder (``<class>/<file>``), decoded once.

    Attributes:
        paths: one path per decodable image, sorted.
        labels: the class sub-folder each image sits in.
        images: the decoded images (``L`` or ``RGB``).
        unreadable: site-relative names of image files that did not decode, and why.
        skipped: files that are not images by name (left alone).
    """

    paths: list[Path]
    labels: list[str]
    images: list[Image.Image]
    unreadable: list[str]
    skipped: list[str]


def load_folder(files: list[Path], root: Path) -> FolderImages:
    """Decode every image file of a folder; the class is the first path part below ``root``."""
    out = FolderImages([], [], [], [], [])
    for p in files:
        rel = p.relative_to(root)
        if not is_image_name(p.name):
            out.skipped.append(rel.as_posix())
            continue
        try:
            img = read_image(p)
        except UnreadableImage as exc:
            out.unreadable.append(f"{rel.as_posix()}: {str(exc).split(': ', 1)[-1][:80]}")
            continue
        out.paths.append(p)
        out.labels.append(rel.parts[0] if len(rel.parts) > 1 else "")
        out.images.append(img)
    return out


#: Crop margins (fraction of the side) a copy may have been trimmed by before being rescaled. The
#: step is 0.75% so that on small images (64-96 px) some view lines up with any whole-pixel trim of
#: 2-6%: one pixel of misalignment at 96 px drops the correlation of a true copy to 0.84 (measured),
#: below the duplicate threshold.
CROP_MARGINS = (0.0, 0.02, 0.0275, 0.035, 0.0425, 0.05, 0.0575, 0.065)
FINGERPRINT_SIDE = 32


def fingerprint_views(img: Image.Image) -> np.ndarray:
    """Band-pass 32x32 grey thumbnails of the image and of centre crops (one row per margin).

    The band-pass (image minus its blur) keeps the detail that tells two images of the same
    anatomy apart; the crop views let a trimmed-and-rescaled copy line up with its original.
    """
    g = img.convert("L")
    w, h = g.size
    rows = []
    for f in CROP_MARGINS:
        m = round(min(w, h) * f)
        t = (g.crop((m, m, w - m, h - m)) if m else g).resize((FINGERPRINT_SIDE, FINGERPRINT_SIDE), Image.BILINEAR)
        a = np.asarray(t, dtype=np.float32) - np.asarray(t.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32)
        rows.append(a.ravel())
    return np.stack(rows)


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


def similar_pairs(views: np.ndarray, min_similarity: float, chunk: int = 1024) -> list[tuple[float, int, int]]:
    """``(similarity, i, j)`` for pairs (i < j) that correlate at least ``min_similarity`` in some view.

    ``views`` is (images, margins, pixels), already :func:`normalised_views`. Row chunks keep
    memory bounded at 10k+ images. Sorted most similar first.
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
    out = np.zeros((cells, cells, bins), np.float32)
    for cy in range(cells):
        for cx in range(cells):
            m = mag[cy * s:(cy + 1) * s, cx * s:(cx + 1) * s].ravel()
            b = idx[cy * s:(cy + 1) * s, cx * s:(cx + 1) * s].ravel()
            out[cy, cx] = np.bincount(b, weights=m, minlength=bins)
    out /= out.sum(axis=2, keepdims=True) + 1e-6
    return out.ravel()


def _spectrum(g: np.ndarray, bands: int = 8) -> np.ndarray:
    f = np.abs(np.fft.fftshift(np.fft.fft2(g - g.mean()))) ** 2
    n = g.shape[0]
    yy, xx = np.indices(f.shape)
    r = np.hypot(yy - n / 2, xx - n / 2) / (n / 2)
    edges = np.linspace(0, 1, bands + 1)
    p = np.array([f[(r >= lo) & (r < hi)].mean() for lo, hi in itertools.pairwise(edges)])
    return np.log1p(p / (p.sum() + 1e-9) * 100)


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
    rgb = np.asarray(small, dtype=np.float32) / 255
    g = np.asarray(small.convert("L"), dtype=np.float32) / 255
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    sat = (mx - mn) / (mx + 1e-3)
    gy, gx = np.gradient(g)
    grad = np.hypot(gx, gy)
    thumb = small.convert("L").resize((8, 8), Image.BOX)
    return {
        "colour": np.array([*rgb.reshape(-1, 3).mean(0), *rgb.reshape(-1, 3).std(0), sat.mean()]),
        **_hue_saturation(small),
        "grey_stats": np.array([g.mean(), g.std(), (g < 0.05).mean(), (g > 0.95).mean(), grad.mean(), grad.std()]),
        "grey_histogram": np.histogram(g, bins=16, range=(0, 1))[0] / g.size,
        "thumbnail": np.asarray(thumb, dtype=np.float32).ravel() / 255,
        "hog": _hog(g),
        "spectrum": _spectrum(g),
    }


def _hue_saturation(small: Image.Image) -> dict[str, np.ndarray]:
    """A hue x saturation histogram (square-rooted), and hue, saturation and value of the lit pixels."""
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    hist = np.histogram2d(h.ravel(), s.ravel(), bins=(8, 3), range=((0, 1), (0, 1)))[0].ravel() / h.size
    lit = v > 0.15  # black borders and vignettes carry no colour
    if lit.sum() < 10:
        lit = np.ones_like(lit)
    angle = 2 * np.pi * h[lit]
    fg = [np.cos(angle).mean(), np.sin(angle).mean(), s[lit].mean(), s[lit].std(), v[lit].mean(),
          v[lit].std(), lit.mean()]
    return {"hue_saturation": np.sqrt(hist), "foreground": np.array(fg)}


def feature_matrix(images: list[Image.Image]) -> np.ndarray:
    """Features of every image, standardised within the folder so that each block counts once.

    Each column is robustly standardised (median / IQR) and bounded by :data:`FEATURE_CLIP`; each
    block is then divided by the square root of its length, so that a distance weighs the 128
    HOG numbers as one cue, like the 7 colour numbers. (Unweighted, HOG and the thumbnail drowned
    colour: fundus photographs in skin folders ranked below ordinary skin images.)

    Grey images in a folder that is mostly in colour get the median colour blocks of the folder:
    a stored-as-grey image of the right modality should not look off-topic for lacking colour, and
    its content still decides.
    """
    per_image = [image_blocks(im) for im in images]
    grey = np.array([is_grey(im) for im in images])
    impute = grey.any() and grey.mean() < 0.5
    out = []
    for b, name in enumerate(BLOCKS):
        x = np.stack([blocks[name] for blocks in per_image]).astype(np.float64)
        if impute and b < COLOUR_BLOCKS:
            x[grey] = np.median(x[~grey], axis=0)
        out.append(np.clip(_standardise(x), -FEATURE_CLIP, FEATURE_CLIP) / np.sqrt(x.shape[1]))
    return np.concatenate(out, axis=1)


def _standardise(x: np.ndarray) -> np.ndarray:
    med = np.median(x, axis=0)
    iqr = np.subtract(*np.percentile(x, [75, 25], axis=0))
    scale = np.where(iqr > 1e-6, iqr, x.std(axis=0) + 1e-6)
    return (x - med) / scale
