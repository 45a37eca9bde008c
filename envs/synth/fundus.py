"""Colour fundus photographs: round retina on black with optic disc, vessel tree and macula.

Class evidence is what an ophthalmologist grades: red dots and blots (microaneurysms,
haemorrhages), yellow exudates and white cotton-wool spots whose counts grow with diabetic
retinopathy grade, neovascular tufts for proliferative DR, the cup-to-disc ratio for glaucoma and
drusen around the macula for AMD. The background colour never depends on the class.
"""

from __future__ import annotations

import numpy as np

from envs.synth.base import BaseRenderer
from envs.synth.primitives import (
    Array,
    Canvas,
    blur,
    disc,
    gaussian_spot,
    grid,
    lerp,
    random_walk,
    smooth_noise,
)

VESSEL = np.array([0.50, 0.07, 0.04], dtype=np.float32)
HAEM = np.array([0.42, 0.03, 0.02], dtype=np.float32)
EXUDATE = np.array([0.98, 0.88, 0.35], dtype=np.float32)
DRUSEN = np.array([0.95, 0.80, 0.40], dtype=np.float32)


class FundusRenderer(BaseRenderer):
    """Renderer for the fundus modality (RGB)."""

    modality = "fundus"
    default_difficulty = 0.5

    # ----------------------------------------------------------------- the healthy eye
    def _eye(self, rng: np.random.Generator, size: int, d: float, cdr: float) -> tuple[Array, dict]:
        yy, xx = grid(size)
        side = float(rng.choice([-1.0, 1.0]))
        dc = (side * rng.uniform(0.26, 0.4), rng.uniform(-0.1, 0.1))
        mc = (dc[0] - side * rng.uniform(0.5, 0.62), dc[1] + rng.uniform(0.0, 0.1))
        r2 = xx * xx + yy * yy
        pig = rng.uniform(0.85, 1.1)  # fundus pigmentation varies between people
        shade = (1.0 - 0.5 * r2) + 0.05 * smooth_noise(rng, size, 6) + 0.03 * smooth_noise(rng, size, 20)
        base = np.array([0.80, 0.34 * pig, 0.12 * pig], dtype=np.float32)
        img = shade[..., None] * base
        img *= (1.0 - 0.4 * gaussian_spot(size, mc, 0.13))[..., None]
        img *= (1.0 - 0.3 * gaussian_spot(size, mc, 0.025))[..., None]
        # vessel tree from the disc: four arcades with branches
        canvas = Canvas(size, supersample=2)
        for vert in (-1.0, 1.0):
            for temporal in (True, False):
                head = (np.pi - 0.75 if temporal else 0.6) * vert * -1.0
                head = np.pi - head if side < 0 else head
                curl = (0.06 if temporal else 0.02) * vert * side
                self._vessel(rng, canvas, dc, float(head), 0.024, curl, depth=0)
        vmask = canvas.mask(blur_px=0.4)
        dr = rng.uniform(0.1, 0.12)
        dmask = disc(size, dc, dr, edge=0.03)
        cup = disc(size, (dc[0] + side * 0.01, dc[1]), dr * cdr, edge=0.02)
        img += dmask[..., None] * (np.array([0.95, 0.6, 0.38], dtype=np.float32) - img)
        img += cup[..., None] * (np.array([1.0, 0.93, 0.78], dtype=np.float32) - img)
        img += 0.8 * vmask[..., None] * (VESSEL - img)
        info = {"disc": dc, "macula": mc, "side": side, "disc_r": dr, "d": d}
        if rng.random() < 0.5 * d + 0.15:  # camera reflexes: distractors for every class
            for _ in range(int(rng.integers(1, 4))):
                c = (rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6))
                img += 0.12 * gaussian_spot(size, c, rng.uniform(0.05, 0.15), rng.uniform(0.3, 1))[..., None]
        return img, info

    def _vessel(self, rng, canvas: Canvas, start, head: float, width: float, curl: float, depth: int) -> None:
        steps = int(rng.integers(9, 14)) if depth == 0 else int(rng.integers(4, 8))
        pts = random_walk(rng, start, head, steps, 0.07, 0.12, curl)
        canvas.line(pts, width)
        if depth < 2:
            for i in range(2, len(pts) - 1, int(rng.integers(2, 4))):
                h2 = head + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
                self._vessel(rng, canvas, pts[i], float(h2), width * 0.6, curl * 0.5, depth + 1)

    @staticmethod
    def _finish_eye(img: Array, size: int) -> Array:
        fov = disc(size, (0.0, 0.0), 0.95, edge=0.02)
        return np.clip(img, 0.0, 1.0) * fov[..., None]

    # ----------------------------------------------------------------- lesions
    def _spots(self, rng, img: Array, size: int, info: dict, n: int, radius: tuple[float, float],
               colour: Array, alpha: float, spread: float, around: str = "macula",
               soft: float = 0.4, elong: float = 1.0) -> Array:
        """Scatter ``n`` round (or elongated) spots around the macula/posterior pole."""
        if n <= 0:
            return img
        px = 2.0 / size
        c = Canvas(size, supersample=2)
        centre = info[around]
        for _ in range(n):
            ang, rad = rng.uniform(0, 2 * np.pi), spread * np.sqrt(rng.uniform(0.02, 1.0))
            x, y = centre[0] + rad * np.cos(ang), centre[1] + rad * np.sin(ang)
            if x * x + y * y > 0.8:
                continue
            r = max(rng.uniform(*radius), 0.6 * px)
            e = rng.uniform(1.0, elong)
            c.ellipse(x, y, r * e, r / e)
        m = c.mask(blur_px=soft) * alpha
        return img + m[..., None] * (colour - img)

    def _dr(self, rng, size: int, d: float, ma: int, haem: int, exud: int, cws: int, nv: int) -> Array:
        img, info = self._eye(rng, size, d, cdr=rng.uniform(0.2, 0.45))
        a = lerp(1.0, 0.5, d)
        k = lerp(1.0, 0.6, d)
        img = self._spots(rng, img, size, info, round(ma * k), (0.008, 0.014), HAEM, 0.95 * a, 0.55)
        img = self._spots(rng, img, size, info, round(haem * k), (0.02, 0.04), HAEM, 0.9 * a, 0.65,
                          elong=1.8)
        img = self._spots(rng, img, size, info, round(exud * k), (0.01, 0.022), EXUDATE, 0.9 * a, 0.35)
        img = self._spots(rng, img, size, info, round(cws * k), (0.03, 0.05), np.ones(3, np.float32),
                          0.6 * a, 0.6, soft=1.2)
        for _ in range(round(nv * max(k, 0.7))):  # neovascular tufts: tangles of fine tortuous vessels
            at_disc = rng.random() < 0.5
            c0 = info["disc"] if at_disc else (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5))
            canvas = Canvas(size, supersample=2)
            for _ in range(int(rng.integers(6, 11))):
                start = (c0[0] + rng.normal(0, 0.05), c0[1] + rng.normal(0, 0.05))
                canvas.line(random_walk(rng, start, rng.uniform(0, 2 * np.pi), 7, 0.025, 0.9), 0.008)
            m = canvas.mask(blur_px=0.3) * a
            img += m[..., None] * (VESSEL * 1.1 - img)
        return img

    def _draw_normal(self, rng, size, d):
        img, _ = self._eye(rng, size, d, cdr=rng.uniform(0.2, lerp(0.4, 0.5, d)))
        return self._finish_eye(img, size)

    def _draw_dr_mild(self, rng, size, d):
        return self._finish_eye(self._dr(rng, size, d, int(rng.integers(3, 7)), 0, 0, 0, 0), size)

    def _draw_dr_moderate(self, rng, size, d):
        n = rng.integers
        return self._finish_eye(self._dr(rng, size, d, n(6, 12), n(3, 7), n(4, 10), 0, 0), size)

    def _draw_dr_severe(self, rng, size, d):
        n = rng.integers
        return self._finish_eye(self._dr(rng, size, d, n(12, 20), n(12, 22), n(6, 14), n(2, 5), 0), size)

    def _draw_dr_proliferative(self, rng, size, d):
        n = rng.integers
        return self._finish_eye(self._dr(rng, size, d, n(8, 16), n(8, 16), n(4, 10), n(1, 4), n(1, 3)), size)

    def _draw_glaucoma(self, rng, size, d):
        img, _ = self._eye(rng, size, d, cdr=rng.uniform(lerp(0.7, 0.55, d), 0.9))
        return self._finish_eye(img, size)

    def _draw_amd(self, rng, size, d):
        img, info = self._eye(rng, size, d, cdr=rng.uniform(0.2, 0.45))
        a = lerp(1.0, 0.55, d)
        n = round(rng.integers(12, 30) * lerp(1.0, 0.6, d))
        img = self._spots(rng, img, size, info, n, (0.012, 0.03), DRUSEN, 0.85 * a, 0.22, soft=0.8)
        if rng.random() < 0.4:  # pigment clumping / geographic atrophy
            img = self._spots(rng, img, size, info, int(rng.integers(2, 5)), (0.01, 0.02),
                              np.array([0.2, 0.1, 0.05], np.float32), 0.7 * a, 0.12)
        return self._finish_eye(img, size)

    def _draw_other(self, rng, size, d):
        """Laser photocoagulation scars: rows of pale rings with pigmented centres."""
        img, info = self._eye(rng, size, d, cdr=rng.uniform(0.2, 0.45))
        ring, core = Canvas(size, supersample=2), Canvas(size, supersample=2)
        for _ in range(int(rng.integers(25, 45))):
            ang, rad = rng.uniform(0, 2 * np.pi), rng.uniform(0.45, 0.8)
            x, y = info["macula"][0] * 0.3 + rad * np.cos(ang), rad * np.sin(ang)
            ring.ellipse(x, y, 0.035, 0.035)
            core.ellipse(x, y, 0.018, 0.018)
        img += 0.7 * ring.mask(0.4)[..., None] * (np.array([0.95, 0.85, 0.65], np.float32) - img)
        img += 0.8 * core.mask(0.3)[..., None] * (np.array([0.15, 0.08, 0.04], np.float32) - img)
        return self._finish_eye(img, size)

    def render_other_anatomy(self, rng: np.random.Generator, size: int):
        """An anterior-segment photo: eyelids, white sclera, textured iris and a black pupil."""
        yy, xx = grid(size)
        skin = np.array([0.85, 0.62, 0.5], np.float32) * (0.9 + 0.05 * smooth_noise(rng, size, 8))[..., None]
        cx, cy = rng.uniform(-0.1, 0.1), rng.uniform(-0.05, 0.05)
        open_ = rng.uniform(0.35, 0.5)
        eye = np.clip((open_ * (1 - ((xx - cx) / 0.85) ** 2) - np.abs(yy - cy)) / 0.02, 0, 1)
        sclera = np.array([0.93, 0.9, 0.88], np.float32)
        iris_col = np.array(rng.choice([[0.35, 0.22, 0.1], [0.3, 0.45, 0.6], [0.35, 0.4, 0.2]]), np.float32)
        ir = rng.uniform(0.3, 0.38)
        ang = np.arctan2(yy - cy, xx - cx)
        streak = 0.75 + 0.25 * np.cos(ang * rng.integers(30, 50) + 3 * smooth_noise(rng, size, 10))
        iris = disc(size, (cx, cy), ir, 0.02) * eye
        pupil = disc(size, (cx, cy), ir * rng.uniform(0.3, 0.5), 0.015) * eye
        glint = gaussian_spot(size, (cx + 0.08, cy - 0.08), 0.02) * eye
        img = skin
        img = img + eye[..., None] * (sclera - img)
        img = img + iris[..., None] * (iris_col * streak[..., None] - img)
        img = img + pupil[..., None] * (0.03 - img)
        img = img + glint[..., None] * (1.0 - img)
        return self._finish(blur(img, 0.5))
