"""Dermatoscopic images: a pigmented or vascular lesion on magnified skin, sometimes with hair.

Class evidence follows the dermoscopy pattern analysis a dermatologist uses: symmetry and border
(nevus round and regular, melanoma asymmetric and notched), number of colours and the blue-white
veil (melanoma), arborising vessels on a pearly background (BCC), milia-like cysts and comedo-like
openings (seborrhoeic/benign keratosis), the red "strawberry" pseudo-network with white follicles
(actinic keratosis) and red-purple lacunae (vascular lesions). Skin tone, hair, lesion size, place
and rotation vary in every class.
"""

from __future__ import annotations

import numpy as np

from envs.synth.base import BaseRenderer
from envs.synth.primitives import (
    Array,
    Canvas,
    blur,
    disc,
    grid,
    lerp,
    radial_blob,
    random_walk,
    smooth_noise,
)


def _evidence(d: float) -> float:
    """Opacity of the class-specific structures: obvious at difficulty 0, faint at 1."""
    return lerp(1.0, 0.12, d)


#: Typical body colour of each lesion type. Atypical colours occur in practice (amelanotic
#: melanoma, pigmented BCC, pink nevi): with probability growing with difficulty a lesion borrows
#: another type's colour, so colour alone never settles the class and structures must.
BODY = {
    "nevus": (0.5, 0.3, 0.18),
    "melanoma": (0.45, 0.28, 0.17),
    "basal_cell_carcinoma": (0.93, 0.78, 0.76),
    "benign_keratosis": (0.62, 0.44, 0.28),
    "actinic_keratosis": (0.86, 0.45, 0.42),
    "vascular_lesion": (0.85, 0.72, 0.72),
}


def _body(rng: np.random.Generator, concept: str, d: float) -> np.ndarray:
    names = list(BODY)
    if rng.random() < lerp(0.0, 0.8, d):
        concept = names[int(rng.integers(len(names)))]
    return np.asarray(BODY[concept], np.float32) * rng.uniform(0.85, 1.1)


class DermatoscopyRenderer(BaseRenderer):
    """Renderer for the dermatoscopy modality (RGB)."""

    modality = "dermatoscopy"
    default_difficulty = 0.6

    # ----------------------------------------------------------------- skin and lesion frame
    def _skin(self, rng, size: int) -> Array:
        tone = rng.uniform(0.0, 1.0)
        base = np.array([lerp(0.93, 0.72, tone), lerp(0.74, 0.5, tone), lerp(0.66, 0.38, tone)], np.float32)
        tex = 1.0 + 0.04 * smooth_noise(rng, size, 5) + 0.025 * smooth_noise(rng, size, 30)
        return tex[..., None] * base

    def _frame(self, rng, img: Array, size: int) -> Array:
        """Hair, gel bubbles and the dermatoscope's round field of view (all class-independent)."""
        if rng.random() < 0.45:
            c = Canvas(size, supersample=2)
            for _ in range(int(rng.integers(1, 9))):
                start = (rng.uniform(-1, 1), rng.uniform(-1, 1))
                c.line(random_walk(rng, start, rng.uniform(0, 2 * np.pi), 12, 0.12, 0.08), 0.008)
            img = img + 0.85 * c.mask(0.3)[..., None] * (np.array([0.12, 0.08, 0.06], np.float32) - img)
        if rng.random() < 0.4:
            rad = rng.uniform(0.95, 1.25)
            img = img * disc(size, (rng.normal(0, 0.05), rng.normal(0, 0.05)), rad, 0.06)[..., None]
        return np.clip(img, 0, 1)

    def _lesion(self, rng, size: int, d: float, irregular: float, spikes: float = 0.0) -> tuple[Array, tuple]:
        c = (rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15))
        r = rng.uniform(0.3, 0.5) * lerp(1.0, 0.75, d)
        m = radial_blob(rng, size, c, r, irregularity=irregular, harmonics=6, aspect=rng.uniform(0.75, 1.0),
                        angle=rng.uniform(0, np.pi), edge=0.05, spikes=spikes)
        return m, (c, r)

    @staticmethod
    def _paint(img: Array, mask: Array, colour, alpha: float = 1.0) -> Array:
        col = np.asarray(colour, np.float32)
        return img + (alpha * mask)[..., None] * (col - img)

    def _dots(self, rng, size: int, geom, n: int, rad: tuple[float, float], spread: float = 0.85) -> Array:
        (cx, cy), r = geom
        c = Canvas(size, supersample=2)
        for _ in range(n):
            a, q = rng.uniform(0, 2 * np.pi), r * spread * np.sqrt(rng.uniform())
            rr = max(rng.uniform(*rad), 1.2 / size)
            c.ellipse(cx + q * np.cos(a), cy + q * np.sin(a), rr, rr)
        return c.mask(0.3)

    def _network(self, rng, size: int, period: float, regular: bool) -> Array:
        """Reticular pigment network: bright holes in a brown mesh."""
        yy, xx = grid(size)
        a = rng.uniform(0, np.pi)
        u, v = xx * np.cos(a) + yy * np.sin(a), -xx * np.sin(a) + yy * np.cos(a)
        warp = 0.15 if regular else 0.6
        u = u + warp * period * smooth_noise(rng, size, 6)
        v = v + warp * period * smooth_noise(rng, size, 6)
        f = np.pi / period
        return (np.abs(np.sin(u * f) * np.sin(v * f)) > 0.35).astype(np.float32)

    # ----------------------------------------------------------------- the concepts
    def _draw_nevus(self, rng, size, d):
        img = self._skin(rng, size)
        m, _ = self._lesion(rng, size, d, irregular=lerp(0.02, 0.2, d))
        brown = _body(rng, "nevus", d)
        img = self._paint(img, m, brown, 0.9)
        net = self._network(rng, size, rng.uniform(0.06, 0.1), regular=True) * m
        img = self._paint(img, blur(net, 0.5), brown * 0.75, 0.35)
        return self._frame(rng, img, size)

    def _draw_melanoma(self, rng, size, d):
        img = self._skin(rng, size)
        m, geom = self._lesion(rng, size, d, irregular=lerp(0.45, 0.15, d))
        ev = _evidence(d)
        img = self._paint(img, m, _body(rng, "melanoma", d), 0.92)
        zones = smooth_noise(rng, size, 5)
        dark = np.clip((zones - 0.3) * 3, 0, 1) * m
        img = self._paint(img, dark, (0.16, 0.09, 0.07), 0.9 * ev)
        light = np.clip((-zones - 0.5) * 3, 0, 1) * m
        img = self._paint(img, light, (0.7, 0.52, 0.4), 0.8 * ev)
        veil = radial_blob(rng, size, (geom[0][0] + rng.uniform(-0.2, 0.2), geom[0][1] + rng.uniform(-0.2, 0.2)),
                           geom[1] * rng.uniform(0.3, 0.55), irregularity=0.3, edge=0.08) * m
        img = self._paint(img, veil, (0.55, 0.6, 0.72), 0.85 * ev)
        net = self._network(rng, size, rng.uniform(0.05, 0.09), regular=False) * m
        img = self._paint(img, blur(net, 0.5), (0.12, 0.07, 0.05), 0.4)
        img = self._paint(img, self._dots(rng, size, geom, int(rng.integers(5, 15)), (0.01, 0.02), 1.05),
                          (0.1, 0.06, 0.05), 0.8 * ev)
        return self._frame(rng, img, size)

    def _draw_basal_cell_carcinoma(self, rng, size, d):
        img = self._skin(rng, size)
        m, geom = self._lesion(rng, size, d, irregular=0.15)
        img = self._paint(img, blur(m, 1.5), _body(rng, "basal_cell_carcinoma", d), 0.75)  # pearly translucent
        c = Canvas(size, supersample=2)
        (cx, cy), r = geom
        for _ in range(int(rng.integers(3, 7) * lerp(1.0, 0.6, d)) + 1):  # arborising vessels
            start = (cx + rng.normal(0, r * 0.4), cy + rng.normal(0, r * 0.4))
            head = rng.uniform(0, 2 * np.pi)
            trunk = random_walk(rng, start, head, 6, r * 0.12, 0.3)
            c.line(trunk, 0.014)
            for p in trunk[1:-1]:
                c.line(random_walk(rng, p, head + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), 3, r * 0.08, 0.4),
                       0.007)
        img = self._paint(img, c.mask(0.3) * m, (0.75, 0.08, 0.12), 0.95 * _evidence(d))
        nests = self._dots(rng, size, geom, int(rng.integers(0, 5)), (0.025, 0.05), 0.7)
        img = self._paint(img, blur(nests, 1.0), (0.35, 0.38, 0.5), 0.7 * _evidence(d))
        return self._frame(rng, img, size)

    def _draw_benign_keratosis(self, rng, size, d):
        img = self._skin(rng, size)
        m, geom = self._lesion(rng, size, d, irregular=0.12)
        tan = _body(rng, "benign_keratosis", d)
        waxy = 1.0 + 0.12 * smooth_noise(rng, size, 14)
        img = img + (0.92 * m)[..., None] * (tan * waxy[..., None] - img)
        k, ev = lerp(1.0, 0.55, d), _evidence(d)
        img = self._paint(img, self._dots(rng, size, geom, int(rng.integers(6, 14) * k), (0.014, 0.026)),
                          (0.97, 0.95, 0.85), 0.9 * ev)  # milia-like cysts
        img = self._paint(img, self._dots(rng, size, geom, int(rng.integers(5, 12) * k), (0.012, 0.022)),
                          (0.2, 0.13, 0.08), 0.9 * ev)  # comedo-like openings
        return self._frame(rng, img, size)

    def _draw_actinic_keratosis(self, rng, size, d):
        img = self._skin(rng, size)
        m, geom = self._lesion(rng, size, d, irregular=0.25)
        img = self._paint(img, blur(m, 2.0), _body(rng, "actinic_keratosis", d), 0.85)  # erythema, ill-defined
        k = lerp(1.0, 0.6, d)
        foll = self._dots(rng, size, geom, int(rng.integers(20, 40) * k), (0.012, 0.02), 0.95)
        img = self._paint(img, foll, (0.97, 0.9, 0.8), 0.85 * _evidence(d))  # strawberry: white follicles on red
        scale = np.clip(smooth_noise(rng, size, 12) - 0.8, 0, 1) * m
        img = self._paint(img, np.clip(scale * 3, 0, 1), (0.95, 0.93, 0.88), 0.7 * _evidence(d))
        return self._frame(rng, img, size)

    def _draw_vascular_lesion(self, rng, size, d):
        img = self._skin(rng, size)
        m, geom = self._lesion(rng, size, d, irregular=0.1)
        img = self._paint(img, m, _body(rng, "vascular_lesion", d), 0.6)  # whitish septa between lacunae
        (cx, cy), r = geom
        lac = Canvas(size, supersample=2)
        for _ in range(int(rng.integers(6, 14))):
            a, q = rng.uniform(0, 2 * np.pi), r * 0.75 * np.sqrt(rng.uniform())
            rr = r * rng.uniform(0.15, 0.3)
            lac.ellipse(cx + q * np.cos(a), cy + q * np.sin(a), rr, rr * rng.uniform(0.7, 1.0))
        colour = (0.62, 0.08, 0.18) if rng.random() < 0.6 else (0.42, 0.1, 0.3)
        img = self._paint(img, lac.mask(0.6) * m, colour, 0.95 * _evidence(d))
        return self._frame(rng, img, size)

    def _draw_other(self, rng, size, d):
        """Dermatofibroma: light-brown delicate network around a central white scar-like patch."""
        img = self._skin(rng, size)
        m, geom = self._lesion(rng, size, d, irregular=0.08)
        img = self._paint(img, blur(m, 2.0), (0.65, 0.45, 0.32), 0.7)
        net = self._network(rng, size, 0.06, regular=True) * m
        img = self._paint(img, blur(net, 0.5), (0.45, 0.3, 0.2), 0.4)
        scar = radial_blob(rng, size, geom[0], geom[1] * 0.4, irregularity=0.3, edge=0.08)
        img = self._paint(img, scar, (0.96, 0.92, 0.88), 0.85)
        return self._frame(rng, img, size)

    def render_other_anatomy(self, rng: np.random.Generator, size: int):
        """A clinical photo of a finger nail (not dermatoscopy of a skin lesion)."""
        yy, _xx = grid(size)
        bg = np.full((size, size, 3), rng.uniform(0.1, 0.5), np.float32)
        finger = radial_blob(rng, size, (0.0, 0.35), 0.55, aspect=1.6, edge=0.05)
        img = self._paint(bg, finger, np.array([0.88, 0.66, 0.55], np.float32) * rng.uniform(0.8, 1.05))
        nail = radial_blob(rng, size, (0.0, -0.05), 0.3, aspect=1.35, edge=0.03) * (yy > -0.55)
        img = self._paint(img, nail, (0.95, 0.75, 0.74), 0.9)
        lunula = disc(size, (0.0, 0.28), 0.14, 0.03) * nail
        img = self._paint(img, lunula, (0.98, 0.93, 0.9), 0.8)
        tip = nail * (yy < -0.3)
        img = self._paint(img, tip, (0.98, 0.97, 0.94), 0.8)
        return self._finish(blur(img, 0.6))
