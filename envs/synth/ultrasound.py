"""B-mode breast ultrasound: a sector (fan) image of layered breast tissue with speckle.

Class evidence follows BI-RADS descriptors: an oval, circumscribed, wider-than-tall hypoechoic mass
with posterior enhancement (benign) versus an irregular, spiculated, taller-than-wide mass with an
echogenic halo and posterior acoustic shadowing (malignant). Normal scans show the layers only
(skin, subcutaneous fat lobules, Cooper's ligaments, glandular tissue, pectoral muscle); fat lobules
are dark ovals in every class, so "a dark region" alone is not the answer.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from envs.synth.base import BaseRenderer
from envs.synth.primitives import Array, Canvas, blur, grid, lerp, radial_blob, smooth_noise

APEX = (0.0, -1.25)
R0, R1, HALF_ANGLE = 0.4, 2.2, 0.62


class UltrasoundRenderer(BaseRenderer):
    """Renderer for the ultrasound modality (L)."""

    modality = "ultrasound"
    default_difficulty = 0.5

    def _polar(self, size: int) -> tuple[Array, Array]:
        yy, xx = grid(size)
        dx, dy = xx - APEX[0], yy - APEX[1]
        return np.sqrt(dx * dx + dy * dy), np.arctan2(dx, dy)

    def _speckle(self, rng, size: int) -> Array:
        re, im = rng.standard_normal((2, size, size)).astype(np.float32)
        sig = (0.5 * size / 128, 1.2 * size / 128)
        mag = np.hypot(gaussian_filter(re, sig), gaussian_filter(im, sig))
        return mag / (mag.mean() + 1e-6)

    def _tissue(self, rng, size: int, d: float) -> tuple[Array, Array, Array]:
        """Echogenicity map of normal layered breast tissue, plus polar coordinates."""
        r, th = self._polar(size)
        t = (r - R0) / (R1 - R0)
        wave = 0.05 * smooth_noise(rng, size, 3)
        skin_t, fat_t = rng.uniform(0.03, 0.05), rng.uniform(0.2, 0.35)
        gland_t = fat_t + rng.uniform(0.3, 0.4)
        tt = t + wave
        echo = np.where(tt < skin_t, 0.9, np.where(tt < fat_t, 0.3, np.where(tt < gland_t, 0.6, 0.35)))
        echo = blur(echo.astype(np.float32), 1.5 * size / 128)
        echo = echo + 0.15 * smooth_noise(rng, size, 8)
        lig = Canvas(size, 2)  # Cooper's ligaments and muscle striations
        for _ in range(int(rng.integers(3, 7))):
            x0 = rng.uniform(-0.8, 0.8)
            y0 = APEX[1] + R0 + (R1 - R0) * rng.uniform(skin_t, fat_t)
            lig.line([(x0, y0), (x0 + rng.uniform(-0.3, 0.3), y0 + rng.uniform(0.15, 0.3)),
                      (x0 + rng.uniform(-0.4, 0.4), y0 + rng.uniform(0.1, 0.2))], 0.012)
        for k in range(4):
            y0 = APEX[1] + R0 + (R1 - R0) * (gland_t + 0.06 + 0.05 * k)
            lig.line([(-1, y0 + rng.normal(0, 0.02)), (1, y0 + rng.uniform(-0.1, 0.1))], 0.01)
        echo = echo + 0.35 * lig.mask(0.5)
        lob = Canvas(size, 2)  # dark fat lobules: class-independent distractors
        for _ in range(int(rng.integers(1, 4) + 3 * d)):
            y = APEX[1] + R0 + (R1 - R0) * rng.uniform(skin_t + 0.03, gland_t)
            rx = rng.uniform(0.05, 0.1)
            lob.ellipse(rng.uniform(-0.6, 0.6), y, rx, rx * rng.uniform(0.4, 0.7))
        echo = echo * (1 - 0.5 * lob.mask(1.0))
        return echo, r, th

    def _mass_site(self, rng) -> tuple[float, float]:
        return rng.uniform(-0.35, 0.35), rng.uniform(-0.2, 0.3)

    def _shadow(self, r: Array, th: Array, c: tuple[float, float], half_w: float) -> Array:
        rc = np.hypot(c[0] - APEX[0], c[1] - APEX[1])
        tc = np.arctan2(c[0] - APEX[0], c[1] - APEX[1])
        ang = np.clip(1 - np.abs(th - tc) / (half_w / rc), 0, 1) ** 0.5
        return ang * np.clip((r - rc) / 0.1, 0, 1)

    def _finish_us(self, rng, size: int, echo: Array, r: Array, th: Array) -> Array:
        t = np.clip((r - R0) / (R1 - R0), 0, 1)
        img = np.clip(echo, 0.02, None) * self._speckle(rng, size) * (1.0 - 0.45 * t) * 0.6
        fan = np.clip((HALF_ANGLE - np.abs(th)) * 40, 0, 1) * np.clip((r - R0) * 40, 0, 1) * np.clip((R1 - r) * 40, 0, 1)
        return np.clip(img, 0, 1) * fan

    def _draw_normal(self, rng, size, d):
        echo, r, th = self._tissue(rng, size, d)
        return self._finish_us(rng, size, echo, r, th)

    def _draw_benign(self, rng, size, d):
        echo, r, th = self._tissue(rng, size, d)
        c = self._mass_site(rng)
        w = rng.uniform(0.16, 0.28) * lerp(1, 0.75, d)
        m = radial_blob(rng, size, c, w, irregularity=lerp(0.03, 0.1, d), aspect=rng.uniform(0.5, lerp(0.7, 0.9, d)),
                        angle=rng.normal(0, 0.15), edge=0.03)
        a = lerp(1.0, 0.6, d)
        echo = echo * (1 - 0.85 * a * m) + 0.3 * a * self._shadow(r, th, c, w * 0.8) * (1 - m)
        return self._finish_us(rng, size, echo, r, th)

    def _draw_malignant(self, rng, size, d):
        echo, r, th = self._tissue(rng, size, d)
        c = self._mass_site(rng)
        w = rng.uniform(0.12, 0.2) * lerp(1, 0.8, d)
        m = radial_blob(rng, size, c, w, irregularity=lerp(0.35, 0.2, d), harmonics=6,
                        aspect=rng.uniform(lerp(1.1, 0.85, d), 1.5), angle=rng.normal(0, 0.2), edge=0.03,
                        spikes=lerp(0.6, 0.3, d))
        halo = blur(m, 2.0 * size / 128) - m
        a = lerp(1.0, 0.6, d)
        echo = echo * (1 - 0.85 * a * m) + 0.4 * a * np.clip(halo, 0, 1)
        echo = echo * (1 - 0.75 * a * self._shadow(r, th, c, w * 0.9) * (1 - m))
        return self._finish_us(rng, size, echo, r, th)

    def _draw_other(self, rng, size, d):
        """Intramammary lymph node: reniform hypoechoic cortex around a bright fatty hilum."""
        echo, r, th = self._tissue(rng, size, d)
        c = self._mass_site(rng)
        w = rng.uniform(0.15, 0.22)
        ang = rng.normal(0, 0.3)
        node = radial_blob(rng, size, c, w, aspect=0.55, angle=ang, edge=0.03)
        hilum = radial_blob(rng, size, (c[0] + 0.03, c[1]), w * 0.55, aspect=0.4, angle=ang, edge=0.05)
        echo = echo * (1 - 0.7 * node) + 0.8 * hilum
        return self._finish_us(rng, size, echo, r, th)

    def render_other_anatomy(self, rng: np.random.Generator, size: int):
        """Thyroid (transverse) or a fetal head: same modality, not breast."""
        r, th = self._polar(size)
        yy, xx = grid(size)
        if rng.random() < 0.5:  # thyroid lobes either side of the tracheal shadow, carotids lateral
            echo = 0.3 + 0.1 * smooth_noise(rng, size, 6)
            for s in (-1, 1):
                echo = echo + 0.35 * radial_blob(rng, size, (s * 0.35, 0.0), 0.28, aspect=0.6, edge=0.05)
                echo = echo * (1 - 0.9 * radial_blob(rng, size, (s * 0.72, 0.05), 0.1, edge=0.02))
            trachea = radial_blob(rng, size, (0.0, -0.1), 0.15, edge=0.02)
            echo = echo + 0.8 * (np.clip(0.02 - np.abs(np.hypot(xx, yy + 0.1) - 0.15), 0, 1) * 50)
            echo = echo * (1 - 0.85 * self._shadow(r, th, (0.0, 0.0), 0.12)) * (1 - 0.3 * trachea)
        else:  # fetal head: bright skull ellipse with midline echo in anechoic fluid
            echo = 0.05 + 0.02 * smooth_noise(rng, size, 6)
            c, a = (rng.uniform(-0.2, 0.2), rng.uniform(0.0, 0.3)), rng.uniform(-0.4, 0.4)
            ca, sa = np.cos(a), np.sin(a)
            u, v = (xx - c[0]) * ca + (yy - c[1]) * sa, -(xx - c[0]) * sa + (yy - c[1]) * ca
            ell = np.sqrt((u / 0.45) ** 2 + (v / 0.36) ** 2)
            echo = echo + 0.3 * (ell < 1) + 1.0 * np.clip(1 - np.abs(ell - 1) / 0.06, 0, 1)
            echo = echo + 0.5 * np.clip(1 - np.abs(v) / 0.01, 0, 1) * (ell < 0.8)
        return self._finish(self._finish_us(rng, size, echo.astype(np.float32), r, th))
