"""Small, fast drawing primitives shared by the modality renderers.

Renderers compose float32 arrays in [0, 1] (one per channel) and only convert to PIL at the end, so
every primitive here works on numpy arrays and draws its randomness from the caller's generator.
That keeps a whole image a pure function of the rng state (same seed -> same bytes).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy.ndimage import gaussian_filter

Array = np.ndarray


@lru_cache(maxsize=16)
def grid(size: int) -> tuple[Array, Array]:
    """Return (yy, xx) pixel-centre coordinates in [-1, 1], cached per size (read-only)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def smooth_noise(rng: np.random.Generator, size: int, cells: int, aniso: float = 1.0) -> Array:
    """Zero-mean, unit-ish smooth noise: random values on a coarse grid, upsampled bicubically.

    Args:
        cells: coarse grid cells across the image; more cells = finer texture.
        aniso: ratio of horizontal to vertical cell count (>1 stretches features vertically).
    """
    ch = max(2, int(cells))
    cw = max(2, int(round(cells * aniso)))  # noqa: RUF046  numpy<2 scalars
    coarse = rng.standard_normal((ch, cw)).astype(np.float32)
    img = Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def radial_blob(
    rng: np.random.Generator,
    size: int,
    centre: tuple[float, float],
    radius: float,
    irregularity: float = 0.0,
    harmonics: int = 4,
    aspect: float = 1.0,
    angle: float = 0.0,
    edge: float = 0.02,
    spikes: float = 0.0,
) -> Array:
    """Soft mask of a star-shaped blob whose border radius wobbles with angle.

    Args:
        centre: (x, y) in [-1, 1] image coordinates.
        radius: mean radius in the same units.
        irregularity: amplitude of the low-order border wobble (0 = ellipse).
        harmonics: how many Fourier harmonics make up the wobble.
        aspect: height / width of the underlying ellipse.
        angle: rotation of the ellipse, radians.
        edge: width of the soft border (in [-1, 1] units).
        spikes: amplitude of high-frequency spiculation (thin radial spikes).
    """
    yy, xx = grid(size)
    dx, dy = xx - centre[0], yy - centre[1]
    ca, sa = np.cos(angle), np.sin(angle)
    u = dx * ca + dy * sa
    v = (-dx * sa + dy * ca) / max(aspect, 1e-3)
    dist = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    r = np.ones_like(theta)
    if irregularity > 0:
        for k in range(2, harmonics + 2):
            amp = irregularity * rng.uniform(0.3, 1.0) / k**0.7
            r = r + amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    if spikes > 0:
        n = int(rng.integers(9, 17))
        phase = rng.uniform(0, 2 * np.pi)
        r = r + spikes * np.clip(np.cos(n * theta + phase), 0, None) ** 8
    r = radius * np.clip(r, 0.25, None)
    return np.clip((r - dist) / max(edge, 1e-4) + 0.5, 0.0, 1.0).astype(np.float32)


def disc(size: int, centre: tuple[float, float], radius: float, edge: float = 0.02) -> Array:
    """Soft circular mask (no randomness)."""
    yy, xx = grid(size)
    dist = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2)
    return np.clip((radius - dist) / max(edge, 1e-4) + 0.5, 0.0, 1.0).astype(np.float32)


def gaussian_spot(size: int, centre: tuple[float, float], sigma: float, aspect: float = 1.0) -> Array:
    """Isotropic (or vertically stretched) Gaussian bump of peak 1."""
    yy, xx = grid(size)
    d2 = (xx - centre[0]) ** 2 + ((yy - centre[1]) / aspect) ** 2
    return np.exp(-d2 / (2 * sigma * sigma)).astype(np.float32)


def to_px(size: int, x: float, y: float) -> tuple[float, float]:
    """Map [-1, 1] coordinates to pixel coordinates."""
    return ((x + 1.0) * 0.5 * size, (y + 1.0) * 0.5 * size)


class Canvas:
    """An 'L' drawing layer in pixel space, turned into a float mask with optional blur.

    ImageDraw is much faster than numpy for many small shapes (nuclei, dots, vessel segments).
    """

    def __init__(self, size: int, supersample: int = 1) -> None:
        self.size = size
        self.ss = supersample
        self.img = Image.new("L", (size * supersample, size * supersample), 0)
        self.draw = ImageDraw.Draw(self.img)

    def p(self, x: float, y: float) -> tuple[float, float]:
        """[-1, 1] coordinates -> this canvas' pixels."""
        s = self.size * self.ss
        return ((x + 1.0) * 0.5 * s, (y + 1.0) * 0.5 * s)

    def ellipse(self, x: float, y: float, rx: float, ry: float, value: int = 255) -> None:
        """Axis-aligned filled ellipse; radii in [-1, 1] units."""
        cx, cy = self.p(x, y)
        s = self.size * self.ss * 0.5
        self.draw.ellipse((cx - rx * s, cy - ry * s, cx + rx * s, cy + ry * s), fill=value)

    def polygon(self, pts: list[tuple[float, float]], value: int = 255, outline: int | None = None) -> None:
        """Filled polygon from [-1, 1] points."""
        self.draw.polygon([self.p(x, y) for x, y in pts], fill=value, outline=outline)

    def line(self, pts: list[tuple[float, float]], width: float, value: int = 255) -> None:
        """Polyline from [-1, 1] points; width in [-1, 1] units (at least one pixel)."""
        w = max(1, int(round(width * self.size * self.ss * 0.5)))  # noqa: RUF046  numpy<2
        self.draw.line([self.p(x, y) for x, y in pts], fill=value, width=w, joint="curve")

    def mask(self, blur_px: float = 0.0) -> Array:
        """Return the layer as float32 in [0, 1] at the target size."""
        img = self.img
        if self.ss > 1:
            img = img.resize((self.size, self.size), Image.Resampling.BOX)
        if blur_px > 0:
            img = img.filter(ImageFilter.GaussianBlur(blur_px))
        return np.asarray(img, dtype=np.float32) / 255.0


def blur(arr: Array, sigma_px: float) -> Array:
    """Gaussian blur of a float array (HxW or HxWxC; channels blurred independently)."""
    if sigma_px <= 0:
        return arr
    sigma = (sigma_px, sigma_px, 0) if arr.ndim == 3 else sigma_px
    return gaussian_filter(arr.astype(np.float32, copy=False), sigma, mode="nearest", truncate=3.0)


def compose(*layers: tuple[Array, Array | tuple[float, ...] | float]) -> Array:
    """Alpha-composite (mask, colour) layers in order; returns HxWxC float32.

    The first layer's mask is ignored (it is the background); its colour may be an array HxWxC,
    an RGB tuple or a scalar grey.
    """
    base, colour = layers[0]
    out = _as_rgb(colour, base.shape).copy()
    for mask, colour in layers[1:]:
        c = _as_rgb(colour, mask.shape)
        out += mask[..., None] * (c - out)
    return out


def _as_rgb(colour: Array | tuple[float, ...] | float, shape: tuple[int, ...]) -> Array:
    if isinstance(colour, np.ndarray):
        return colour if colour.ndim == 3 else colour[..., None]
    arr = np.asarray(colour, dtype=np.float32).reshape(1, 1, -1)
    return np.broadcast_to(arr, (*shape[:2], arr.shape[-1])).astype(np.float32)


def to_image(arr: Array, mode: str) -> Image.Image:
    """Clip a float image in [0, 1] (HxW or HxWxC) to uint8 and wrap it as PIL in ``mode``."""
    u8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if mode == "L":
        if u8.ndim == 3:
            u8 = u8.mean(axis=2).astype(np.uint8) if u8.shape[2] > 1 else u8[..., 0]
        return Image.fromarray(u8, mode="L")
    if u8.ndim == 2:
        u8 = np.repeat(u8[..., None], 3, axis=2)
    return Image.fromarray(u8, mode="RGB")


def random_walk(
    rng: np.random.Generator,
    start: tuple[float, float],
    heading: float,
    steps: int,
    step: float,
    wiggle: float,
    curl: float = 0.0,
) -> list[tuple[float, float]]:
    """Points of a smooth random walk (vessels, hairs, fibres)."""
    pts = [start]
    x, y = start
    for _ in range(steps):
        heading += curl + rng.normal(0.0, wiggle)
        x += step * np.cos(heading)
        y += step * np.sin(heading)
        pts.append((float(x), float(y)))
    return pts


def lerp(a: float, b: float, t: float) -> float:
    """Linear interpolation, used to map difficulty onto a parameter range."""
    return a + (b - a) * t
