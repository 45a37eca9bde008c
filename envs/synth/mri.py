"""Axial contrast-enhanced T1 brain MRI slices.

The head is scalp (bright fat), skull (dark bone), grey and white matter with gyral folding,
lateral ventricles and the falx. Class evidence is the tumour's place and shape, as a
neuroradiologist reads it: an irregular ring-enhancing intra-axial mass with a necrotic core and
surrounding oedema in one hemisphere (glioma); a round, well-defined, homogeneously enhancing
extra-axial mass against the skull with a dural tail (meningioma); a small enhancing mass at the
sella in the midline, lower-centre (pituitary); a symmetric brain (no tumour).
"""

from __future__ import annotations

import numpy as np

from envs.synth.base import BaseRenderer
from envs.synth.primitives import Array, Canvas, blur, grid, lerp, radial_blob, smooth_noise


class MRIRenderer(BaseRenderer):
    """Renderer for the brain MRI modality (L)."""

    modality = "mri"
    default_difficulty = 0.6

    def _head(self, rng, size: int) -> tuple[Array, Array, dict]:
        """Return (image, brain mask, geometry) of a normal brain slice."""
        yy, xx = grid(size)
        ox, oy = rng.normal(0, 0.04), rng.normal(0, 0.04)
        rx, ry = rng.uniform(0.62, 0.72), rng.uniform(0.8, 0.9)
        tilt = rng.normal(0, 0.06)
        ca, sa = np.cos(tilt), np.sin(tilt)
        u = (xx - ox) * ca + (yy - oy) * sa
        v = -(xx - ox) * sa + (yy - oy) * ca
        rho = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        img = np.zeros_like(xx)
        scalp = np.clip((1.0 - rho) / 0.02, 0, 1)
        skull_in = 1.0 - 0.07 / rx
        brain_edge = skull_in - 0.05 / rx
        img = img + 0.75 * scalp
        img = img - 0.7 * np.clip((skull_in - rho) / 0.02, 0, 1) * scalp  # dark bone
        brain = np.clip((brain_edge - rho) / 0.015, 0, 1)
        fold = 0.045 * smooth_noise(rng, size, 22, ) + 0.02 * smooth_noise(rng, size, 9)
        wm = np.clip((brain_edge - 0.12 - rho + fold) / 0.02, 0, 1)
        sulci = np.clip(1 - np.abs(smooth_noise(rng, size, 18)) / 0.25, 0, 1) * (1 - wm) * brain
        img = img + brain * (0.45 + 0.17 * wm - 0.25 * sulci)
        # ventricles (symmetric) and the falx
        vent = Canvas(size, 2)
        vs = rng.uniform(0.7, 1.3)
        for s in (-1, 1):
            pts = [(s * 0.04, -0.25), (s * 0.13 * vs, -0.18), (s * 0.12 * vs, 0.05), (s * 0.05, 0.12),
                   (s * 0.03, -0.05)]
            vent.polygon([(ox + p[0] * ca - p[1] * sa, oy + p[0] * sa + p[1] * ca) for p in pts])
        vmask = vent.mask(0.7)
        img = img - 0.4 * vmask * brain
        falx = np.clip(1 - np.abs(u) / 0.008, 0, 1) * brain * (np.abs(v) > 0.3 * ry)
        img = img - 0.2 * falx
        return img, brain, {"o": (ox, oy), "rx": rx, "ry": ry, "rot": (ca, sa), "edge": brain_edge}

    def _at(self, g: dict, x: float, y: float) -> tuple[float, float]:
        """Head-frame coordinates (x right, y down, in units of the head radii) -> image."""
        ca, sa = g["rot"]
        px, py = x * g["rx"], y * g["ry"]
        return g["o"][0] + px * ca - py * sa, g["o"][1] + px * sa + py * ca

    def _finish_mr(self, rng, img: Array) -> Array:
        return np.clip(blur(img, 0.5) + 0.015 * rng.standard_normal(img.shape).astype(np.float32), 0, 1)

    def _draw_no_tumor(self, rng, size, d):
        img, _, _ = self._head(rng, size)
        return self._finish_mr(rng, img)

    def _draw_glioma(self, rng, size, d):
        img, brain, g = self._head(rng, size)
        s = rng.choice([-1.0, 1.0])
        c = self._at(g, s * rng.uniform(0.3, 0.5), rng.uniform(-0.4, 0.4))
        rad = rng.uniform(0.12, 0.2) * lerp(1, 0.55, d)
        a = lerp(1.0, 0.12, d)
        oedema = radial_blob(rng, size, c, rad * rng.uniform(1.6, 2.1), irregularity=0.45, harmonics=6, edge=0.08)
        mass = radial_blob(rng, size, c, rad, irregularity=0.35, harmonics=5, edge=0.03)
        core = radial_blob(rng, size, c, rad * 0.6, irregularity=0.3, edge=0.03)
        img = img - 0.18 * a * oedema * brain
        img = img + a * (0.3 * mass - 0.5 * core) * brain
        return self._finish_mr(rng, img)

    def _draw_meningioma(self, rng, size, d):
        img, brain, g = self._head(rng, size)
        ang = rng.uniform(-np.pi, np.pi)
        rad = rng.uniform(0.1, 0.17) * lerp(1, 0.55, d)
        q = g["edge"] - 0.6 * rad / min(g["rx"], g["ry"])
        c = self._at(g, q * np.cos(ang), q * np.sin(ang))
        mass = radial_blob(rng, size, c, rad, irregularity=0.04, edge=0.02)
        tail = Canvas(size, 2)
        e = g["edge"] * 0.98
        tail.line([self._at(g, e * np.cos(t), e * np.sin(t)) for t in np.linspace(ang - 0.35, ang + 0.35, 8)], 0.012)
        a = lerp(1.0, 0.12, d)
        img = img + a * (0.4 * mass + 0.25 * tail.mask(0.5) * (1 - mass)) * np.maximum(brain, mass)
        return self._finish_mr(rng, img)

    def _draw_pituitary(self, rng, size, d):
        img, _brain, g = self._head(rng, size)
        c = self._at(g, rng.normal(0, 0.03), rng.uniform(0.35, 0.5))
        rad = rng.uniform(0.06, 0.1) * lerp(1, 0.6, d)
        mass = radial_blob(rng, size, c, rad, irregularity=0.1, aspect=rng.uniform(0.8, 1.2), edge=0.02)
        img = img + lerp(1.0, 0.12, d) * 0.42 * mass
        return self._finish_mr(rng, img)

    def _draw_other(self, rng, size, d):
        """Demyelinating plaques: several small ovoid T1-dark lesions around the ventricles."""
        img, brain, g = self._head(rng, size)
        c = Canvas(size, 2)
        for _ in range(int(rng.integers(5, 10))):
            s = rng.choice([-1, 1])
            x, y = self._at(g, s * rng.uniform(0.15, 0.4), rng.uniform(-0.4, 0.2))
            c.ellipse(x, y, rng.uniform(0.02, 0.035), rng.uniform(0.035, 0.05))
        img = img - 0.3 * c.mask(0.5) * brain
        return self._finish_mr(rng, img)

    def render_other_anatomy(self, rng: np.random.Generator, size: int):
        """A sagittal knee MRI: bright marrow of femur, tibia and patella, dark menisci."""
        bone, cart, men = Canvas(size, 2), Canvas(size, 2), Canvas(size, 2)
        jy = rng.uniform(-0.05, 0.1)
        bone.polygon([(-0.3, -1), (0.2, -1), (0.35, jy - 0.3), (0.3, jy - 0.05), (-0.35, jy - 0.05), (-0.4, jy - 0.3)])
        bone.polygon([(-0.4, jy + 0.05), (0.35, jy + 0.05), (0.25, jy + 0.3), (0.2, 1), (-0.25, 1), (-0.3, jy + 0.3)])
        bone.ellipse(0.5, jy - 0.35, 0.08, 0.2)
        cart.line([(-0.35, jy - 0.04), (0.3, jy - 0.04)], 0.03)
        men.polygon([(-0.42, jy), (-0.25, jy - 0.03), (-0.25, jy + 0.03)])
        men.polygon([(0.37, jy), (0.2, jy - 0.03), (0.2, jy + 0.03)])
        soft = radial_blob(rng, size, (0.05, 0.0), 0.6, aspect=1.7, edge=0.05)
        img = 0.3 * soft + 0.45 * bone.mask(0.6) * (0.9 + 0.1 * smooth_noise(rng, size, 20))
        img = img + 0.2 * cart.mask(0.5) - 0.25 * men.mask(0.4)
        return self._finish(self._finish_mr(rng, img))
