"""Per-hospital scanner style: the feature skew between FL sites.

Every hospital's scanner, camera or stain protocol leaves a fingerprint on all its images (tone
curve, colour cast, sharpness, noise, resolution, stain hue, burned-in rulers). The environment
builder samples one ``ScannerStyle`` per site and applies it to every image the site holds, and the
answer key records ``describe()`` so feature-skew-aware FL algorithms can be judged against it.
A style never depends on the class, so it is never a shortcut for the label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from envs.concepts import check_modality

#: Reference H&E optical-density vectors (Ruifrok & Johnston), rows = haematoxylin, eosin, residual.
HE_REFERENCE = np.array(
    [[0.650, 0.704, 0.286], [0.072, 0.990, 0.105], [0.268, 0.570, 0.776]], dtype=np.float32
)

#: Overlay drawn when ``ruler`` is set, per modality (what such devices burn into their images).
OVERLAY_KIND = {
    "dermatoscopy": "ruler",
    "fundus": "text",
    "histopathology": "scalebar",
    "mri": "text",
    "ultrasound": "calipers",
    "xray": "marker",
}


@dataclass(frozen=True)
class ScannerStyle:
    """How one site's acquisition distorts its images.

    Attributes:
        gamma: tone-curve exponent applied to [0, 1] intensities (1 = unchanged).
        contrast: gain around mid-grey (1 = unchanged).
        brightness: additive offset in [0, 1] units.
        colour_cast: per-channel RGB gains (ignored for grey images).
        blur_sigma: Gaussian blur in pixels at 128 px (scaled with image size).
        noise_std: additive Gaussian noise std in [0, 1] units.
        resolution_scale: images are down- then up-sampled by this factor (1 = native).
        stain: haematoxylin and eosin OD-vector offsets (6 floats; zeros = reference stain).
        ruler: whether a ruler, calipers, marker or text is burned into the image.
        modality: the modality the style was sampled for (decides the overlay kind).
    """

    gamma: float = 1.0
    contrast: float = 1.0
    brightness: float = 0.0
    colour_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    blur_sigma: float = 0.0
    noise_std: float = 0.0
    resolution_scale: float = 1.0
    stain: tuple[float, ...] = field(default=(0.0,) * 6)
    ruler: bool = False
    modality: str = ""

    @classmethod
    def identity(cls) -> ScannerStyle:
        """A style that leaves images unchanged."""
        return cls()

    @classmethod
    def sample(cls, modality: str, rng: np.random.Generator, strength: float = 1.0) -> ScannerStyle:
        """Draw a random site style; ``strength`` 0 gives identity, 1 a typical hospital spread."""
        check_modality(modality)
        s = float(max(strength, 0.0))
        colour = modality in ("dermatoscopy", "fundus", "histopathology")
        cast = tuple(float(np.exp(rng.normal(0.0, 0.07 * s))) for _ in range(3)) if colour else (1.0,) * 3
        stain = (0.0,) * 6
        if modality == "histopathology":
            stain = tuple(float(v) for v in rng.normal(0.0, 0.08 * s, size=6))
        return cls(
            gamma=float(np.exp(rng.normal(0.0, 0.18 * s))),
            contrast=float(np.exp(rng.normal(0.0, 0.15 * s))),
            brightness=float(rng.normal(0.0, 0.05 * s)),
            colour_cast=cast,  # type: ignore[arg-type]
            blur_sigma=float(abs(rng.normal(0.0, 0.6 * s))),
            noise_std=float(abs(rng.normal(0.0, 0.025 * s))),
            resolution_scale=float(np.clip(1.0 - abs(rng.normal(0.0, 0.25 * s)), 0.4, 1.0)),
            stain=stain,
            ruler=bool(rng.random() < 0.35 * min(s, 1.0) * 1.4),
            modality=modality,
        )

    def describe(self) -> dict[str, float | bool | list[float]]:
        """JSON-able parameters for the answer key (rounded, without the modality name)."""
        out: dict[str, float | bool | list[float]] = {}
        for key, value in asdict(self).items():
            if key == "modality":
                continue
            if isinstance(value, (tuple, list)):
                out[key] = [round(float(v), 4) for v in value]
            elif isinstance(value, bool):
                out[key] = value
            else:
                out[key] = round(float(value), 4)
        return out

    def apply(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Return ``img`` as this site's scanner would have produced it (same mode and size)."""
        mode, size = img.mode, img.size
        if any(abs(v) > 1e-9 for v in self.stain) and mode == "RGB":
            img = _restain(img, self.stain)
        if self.resolution_scale < 0.999:
            small = (max(8, round(size[0] * self.resolution_scale)), max(8, round(size[1] * self.resolution_scale)))
            img = img.resize(small, Image.Resampling.BILINEAR).resize(size, Image.Resampling.BILINEAR)
        if self.blur_sigma > 0.05:
            img = img.filter(ImageFilter.GaussianBlur(self.blur_sigma * size[0] / 128.0))
        arr = np.asarray(img, dtype=np.float32) / 255.0
        if mode == "RGB":
            arr = arr * np.asarray(self.colour_cast, dtype=np.float32)
        arr = np.clip(arr, 0.0, 1.0) ** self.gamma
        arr = (arr - 0.5) * self.contrast + 0.5 + self.brightness
        if self.noise_std > 0:
            arr = arr + rng.normal(0.0, self.noise_std, size=arr.shape).astype(np.float32)
        out = Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mode=mode)
        if self.ruler:
            _overlay(out, OVERLAY_KIND.get(self.modality, "text"), rng)
        return out


def _restain(img: Image.Image, stain: tuple[float, ...]) -> Image.Image:
    """Unmix an RGB H&E image with the reference vectors and remix it with jittered ones."""
    rgb = np.asarray(img, dtype=np.float32)
    od = -np.log((rgb + 1.0) / 256.0)
    conc = od.reshape(-1, 3) @ np.linalg.inv(HE_REFERENCE)
    new = HE_REFERENCE.copy()
    new[0] = np.clip(new[0] + np.asarray(stain[:3], dtype=np.float32), 0.02, None)
    new[1] = np.clip(new[1] + np.asarray(stain[3:6], dtype=np.float32), 0.02, None)
    new[:2] /= np.linalg.norm(new[:2], axis=1, keepdims=True)
    out = 256.0 * np.exp(-(conc @ new)) - 1.0
    return Image.fromarray(np.clip(out, 0, 255).reshape(rgb.shape).astype(np.uint8), mode="RGB")


def _overlay(img: Image.Image, kind: str, rng: np.random.Generator) -> None:
    """Burn a device overlay into ``img`` in place (position drawn from ``rng``)."""
    w, h = img.size
    draw = ImageDraw.Draw(img)
    white = 255 if img.mode == "L" else (255, 255, 255)
    black = 0 if img.mode == "L" else (0, 0, 0)
    u = max(1, w // 64)
    if kind == "ruler":  # dermatoscope scale along one edge
        y = int(h * rng.uniform(0.86, 0.94))
        x0 = int(w * rng.uniform(0.05, 0.2))
        length = int(w * 0.5)
        draw.line((x0, y, x0 + length, y), fill=black, width=u)
        for i in range(11):
            x = x0 + i * length // 10
            draw.line((x, y, x, y - (3 * u if i % 5 == 0 else 2 * u)), fill=black, width=max(1, u // 2))
    elif kind == "calipers":  # ultrasound measurement crosses and a depth scale
        for _ in range(2):
            x, y = int(w * rng.uniform(0.3, 0.7)), int(h * rng.uniform(0.3, 0.7))
            draw.line((x - 2 * u, y, x + 2 * u, y), fill=white, width=1)
            draw.line((x, y - 2 * u, x, y + 2 * u), fill=white, width=1)
        for i in range(8):
            y = int(h * (0.15 + 0.1 * i))
            draw.line((w - 3 * u, y, w - u, y), fill=white, width=1)
    elif kind == "marker":  # x-ray side marker "L"/"R" block
        x, y = int(w * rng.choice([0.06, 0.8])), int(h * rng.uniform(0.05, 0.15))
        draw.rectangle((x, y, x + 6 * u, y + 6 * u), fill=white)
        draw.line((x + 2 * u, y + u, x + 2 * u, y + 5 * u, x + 4 * u, y + 5 * u), fill=black, width=u)
    elif kind == "scalebar":
        x, y = int(w * 0.7), int(h * 0.92)
        draw.rectangle((x, y, x + w // 5, y + u), fill=black)
    # text lines (patient-free acquisition info) for every kind but the ruler
    if kind in ("text", "calipers", "marker"):
        x0 = int(w * rng.uniform(0.02, 0.06))
        for row in range(int(rng.integers(1, 4))):
            y = int(h * 0.03) + row * 3 * u
            x = x0
            for _ in range(int(rng.integers(2, 5))):
                word = int(rng.integers(2, 6)) * u
                draw.rectangle((x, y, x + word, y + u), fill=white)
                x += word + u
