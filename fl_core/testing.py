"""Tiny image-folder federations for tests and benchmarks (no network, seeded).

:func:`make_shape_folders` draws a learnable task (white circle / square / triangle on a dark,
randomly tinted background, random position and size); :func:`make_noise_folders` writes pure
noise images of mixed sizes and channel counts, to exercise loading.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SHAPES", "make_noise_folders", "make_shape_folders"]

SHAPES = ("circle", "square", "triangle")


def _shape(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 90, 3)))
    draw = ImageDraw.Draw(im)
    r = int(rng.integers(size // 6, size // 4 + 1))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    fill = tuple(int(v) for v in rng.integers(170, 256, 3))
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return im


def make_shape_folders(root: str | Path, clients: int = 2, per_class: int = 40, size: int = 32,
                       seed: int = 0, classes: tuple[str, ...] = SHAPES,
                       missing: dict[int, tuple[str, ...]] | None = None) -> list[str]:
    """Write ``clients`` prepared folders ``root/site<k>/<shape>/<i>.png``; returns their paths.

    Args:
        missing: client index -> classes that client does not have (label skew).
    """
    rng = np.random.default_rng(seed)
    dirs = []
    for k in range(clients):
        site = Path(root) / f"site{k}"
        for cls in classes:
            if missing and cls in missing.get(k, ()):
                continue
            (site / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                _shape(cls, size, rng).save(site / cls / f"{i}.png")
        dirs.append(str(site))
    return dirs


def make_noise_folders(root: str | Path, clients: int = 2, per_class: int = 6, classes: int = 2,
                       seed: int = 0) -> list[str]:
    """Random-noise images of varying size, grayscale or RGB, PNG or JPEG."""
    rng = np.random.default_rng(seed)
    dirs = []
    for k in range(clients):
        site = Path(root) / f"noise{k}"
        for c in range(classes):
            (site / f"class{c}").mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                h, w = (int(v) for v in rng.integers(20, 60, 2))
                gray = bool(rng.integers(0, 2))
                arr = rng.integers(0, 256, (h, w) if gray else (h, w, 3), dtype=np.uint8)
                Image.fromarray(arr).save(site / f"class{c}" / f"{i}.{'png' if i % 2 else 'jpg'}")
        dirs.append(str(site))
    return dirs
