"""Frontal chest radiographs (PA): lung fields, ribs, clavicles, heart shadow, spine and diaphragm.

Class evidence is where and what shape the opacity is, as a radiologist reads it: a dense lobar
patch in one lung (pneumonia), faint bilateral peripheral ground-glass (COVID-19), upper-zone
nodules and cavities (tuberculosis), a basal opacity with a meniscus that blunts the costophrenic
angle (pleural effusion). Opacities only ever add density inside the lungs; exposure, body habitus
and positioning vary in every class.
"""

from __future__ import annotations

import numpy as np

from envs.synth.base import BaseRenderer
from envs.synth.primitives import Array, Canvas, blur, grid, lerp, radial_blob, random_walk, smooth_noise


class XrayRenderer(BaseRenderer):
    """Renderer for the chest X-ray modality (L)."""

    modality = "xray"
    default_difficulty = 0.3

    def _chest(self, rng, size: int, heart_scale: float = 1.0) -> tuple[Array, Array, dict]:
        """Return (image, lung mask, geometry) of a normal chest.

        Position, body width, lung height, heart size, rib spacing and the vascular pattern vary
        per patient: two different chests must not be near-duplicates of each other.
        """
        yy, xx = grid(size)
        ox, oy = rng.normal(0, 0.04), rng.normal(0, 0.04)
        w = rng.uniform(0.86, 1.08)
        tall = rng.uniform(0.92, 1.08)
        heart_scale *= rng.uniform(0.9, 1.1)
        x, y = (xx - ox) / w, (yy - oy) / tall
        body = np.clip((0.95 - np.abs(x) - 0.25 * np.clip(-y - 0.5, 0, None)) / 0.08, 0, 1)
        img = 0.05 + 0.5 * body * (1 - 0.3 * x * x)
        lungs = np.zeros_like(xx)
        geo = {"ox": ox, "oy": oy, "w": w}
        for s in (-1.0, 1.0):
            cx = s * 0.38
            ell = ((x - cx) / 0.3) ** 2 + ((y + 0.05) / 0.62) ** 2
            lung = np.clip((1 - ell) / 0.12, 0, 1)
            dome = 0.42 - 0.25 * np.clip(1 - ((x - cx * 1.05) / 0.32) ** 2, 0, 1) + (0.08 if s > 0 else 0.0)
            lung *= np.clip((dome - y) / 0.04, 0, 1)
            lungs = np.maximum(lungs, lung)
        heart = radial_blob(rng, size, (ox + 0.1 * w, oy + 0.22), 0.3 * heart_scale * w, irregularity=0.05,
                            aspect=0.75, angle=-0.3, edge=0.08)
        spine = np.clip((0.09 - np.abs(x)) / 0.03, 0, 1) * (y > -0.9)
        lungs = lungs * (1 - heart) * (1 - spine)
        img = img - 0.38 * lungs
        img = img + lungs * (0.05 * smooth_noise(rng, size, 14) + 0.03 * smooth_noise(rng, size, 32))  # vessels
        # ribs and clavicles
        c = Canvas(size, supersample=2)
        for s in (-1.0, 1.0):
            gap, sag = rng.uniform(0.1, 0.12), rng.uniform(0.09, 0.15)
            for i in range(9):
                y0 = -0.62 + i * gap + rng.normal(0, 0.012)
                pts = [(ox + s * (0.08 + 0.8 * t) * w, oy + y0 - sag * np.sin(np.pi * t) + 0.25 * t * t)
                       for t in np.linspace(0, 1, 9)]
                c.line(pts, 0.028)
            c.line([(ox + s * 0.08, oy - 0.6), (ox + s * 0.45 * w, oy - 0.72), (ox + s * 0.7 * w, oy - 0.68)], 0.035)
        ribs = c.mask(0.8)
        img = img + 0.09 * ribs * body
        img = img + 0.12 * spine + 0.2 * heart * (1 - spine)
        return img, lungs, geo

    def _finish_cxr(self, rng, img: Array) -> Array:
        return np.clip(blur(img, 0.6), 0, 1) ** rng.uniform(0.9, 1.1)

    def _alpha(self, d: float) -> float:
        return lerp(1.0, 0.45, d)

    def _draw_normal(self, rng, size, d):
        img, _, _ = self._chest(rng, size)
        return self._finish_cxr(rng, img)

    def _draw_pneumonia(self, rng, size, d):
        img, lungs, g = self._chest(rng, size)
        s = rng.choice([-1.0, 1.0])
        c = (g["ox"] + s * rng.uniform(0.3, 0.5), g["oy"] + rng.uniform(-0.1, 0.3))
        patch = radial_blob(rng, size, c, rng.uniform(0.16, 0.26) * lerp(1, 0.75, d), irregularity=0.3,
                            aspect=rng.uniform(0.7, 1.3), edge=0.08)
        dens = patch * (0.85 + 0.15 * smooth_noise(rng, size, 16))
        bron = Canvas(size, supersample=2)  # air bronchograms
        for _ in range(int(rng.integers(1, 4))):
            bron.line(random_walk(rng, c, rng.uniform(0, 2 * np.pi), 4, 0.04, 0.3), 0.012)
        dens = dens * (1 - 0.5 * bron.mask(0.4))
        img = img + 0.36 * self._alpha(d) * dens * lungs
        return self._finish_cxr(rng, img)

    def _draw_covid19(self, rng, size, d):
        img, lungs, g = self._chest(rng, size)
        ggo = np.zeros_like(img)
        for s in (-1.0, 1.0):
            for _ in range(int(rng.integers(2, 4))):
                c = (g["ox"] + s * rng.uniform(0.55, 0.68), g["oy"] + rng.uniform(-0.2, 0.35))
                ggo = np.maximum(ggo, radial_blob(rng, size, c, rng.uniform(0.12, 0.2), irregularity=0.3,
                                                  aspect=1.5, edge=0.15))
        ggo = ggo * (0.8 + 0.2 * smooth_noise(rng, size, 20))
        img = img + 0.22 * self._alpha(d) * blur(ggo, 1.5) * lungs
        return self._finish_cxr(rng, img)

    def _draw_tuberculosis(self, rng, size, d):
        img, lungs, g = self._chest(rng, size)
        a = self._alpha(d)
        sides = [rng.choice([-1.0, 1.0])] if rng.random() < 0.5 else [-1.0, 1.0]
        nod, cav_ring, cav_hole = Canvas(size, 2), Canvas(size, 2), Canvas(size, 2)
        for s in sides:
            for _ in range(int(rng.integers(5, 12) * lerp(1, 0.6, d))):
                x, y = g["ox"] + s * rng.uniform(0.2, 0.6), g["oy"] + rng.uniform(-0.6, -0.25)
                r = rng.uniform(0.015, 0.03)
                nod.ellipse(x, y, r, r)
            if rng.random() < 0.8:
                x, y = g["ox"] + s * rng.uniform(0.3, 0.5), g["oy"] + rng.uniform(-0.55, -0.35)
                r = rng.uniform(0.06, 0.09)
                cav_ring.ellipse(x, y, r, r * rng.uniform(0.8, 1))
                cav_hole.ellipse(x, y, r * 0.6, r * 0.5)
        fib = blur(np.clip(smooth_noise(rng, size, 10) * 0.5, 0, 1) * (grid(size)[0] < -0.25), 1.0)
        img = img + a * lungs * (0.3 * nod.mask(0.5) + 0.3 * cav_ring.mask(0.7) - 0.22 * cav_hole.mask(0.5)
                                 + 0.12 * fib)
        return self._finish_cxr(rng, img)

    def _draw_effusion(self, rng, size, d):
        img, lungs, g = self._chest(rng, size)
        yy, xx = grid(size)
        s = rng.choice([-1.0, 1.0])
        lat = g["ox"] + s * 0.7 * g["w"]
        level = g["oy"] + rng.uniform(-0.05, 0.2) + 0.15 * d
        meniscus = level + 0.6 * np.abs(xx - lat) ** 1.5  # fluid climbs the lateral chest wall
        hemi = np.clip((1 - ((xx - g["ox"] - s * 0.38) / 0.33) ** 2 - ((yy - g["oy"] + 0.05) / 0.66) ** 2) / 0.1, 0, 1)
        fluid = np.clip((yy - meniscus) / 0.04, 0, 1) * hemi * (xx * s > g["ox"] * s + 0.1)
        fluid = np.maximum(fluid * (lungs > 0.02), fluid * (yy > g["oy"] + 0.3))  # hides the diaphragm angle
        img = img + self._alpha(d) * fluid * (0.5 - img).clip(0, None)
        return self._finish_cxr(rng, img)

    def _draw_other(self, rng, size, d):
        """Cardiomegaly with a pacemaker: a large heart and a bright device with a lead."""
        img, _lungs, g = self._chest(rng, size, heart_scale=rng.uniform(1.35, 1.55))
        c = Canvas(size, supersample=2)
        s = rng.choice([-1.0, 1.0])
        x, y = g["ox"] + s * rng.uniform(0.45, 0.6), g["oy"] - rng.uniform(0.45, 0.6)
        c.polygon([(x - 0.08, y - 0.05), (x + 0.08, y - 0.05), (x + 0.08, y + 0.05), (x - 0.08, y + 0.05)])
        c.line([(x, y), (x - s * 0.2, y + 0.15), (g["ox"] + 0.05, g["oy"] + 0.2), (g["ox"] + 0.15, g["oy"] + 0.4)],
               0.01)
        img = np.maximum(img, 0.95 * c.mask(0.4))
        return self._finish_cxr(rng, img)

    def render_other_anatomy(self, rng: np.random.Generator, size: int):
        """A hand or knee radiograph (same modality, wrong body part), posed differently each time."""
        soft, bone = Canvas(size, 2), Canvas(size, 2)
        dx, dy, k = rng.normal(0, 0.06), rng.normal(0, 0.06), rng.uniform(0.85, 1.1)
        if rng.random() < 0.5:  # hand: palm and five rays with phalanges
            soft.ellipse(dx, 0.45 + dy, 0.45 * k, 0.4 * k)
            for i, ang in enumerate(np.linspace(-0.9, 0.5, 5) * rng.uniform(0.8, 1.3) + rng.normal(0, 0.1, 5)):
                base = (dx + k * (-0.3 + 0.15 * i), dy + (0.2 if i else 0.4))
                length = k * (0.75 if i else 0.5) * rng.uniform(0.9, 1.1)
                tip = (base[0] + length * np.sin(ang * 0.5), base[1] - length * np.cos(ang * 0.5))
                soft.line([base, tip], 0.13)
                for t0, t1 in ((0.0, 0.45), (0.5, 0.75), (0.8, 0.97)):
                    p0 = (base[0] + t0 * (tip[0] - base[0]), base[1] + t0 * (tip[1] - base[1]))
                    p1 = (base[0] + t1 * (tip[0] - base[0]), base[1] + t1 * (tip[1] - base[1]))
                    bone.line([p0, p1], 0.055)
                bone.line([base, (dx + (base[0] - dx) * 0.8, dy + 0.75)], 0.06)  # metacarpal
        else:  # knee: femur above, tibia and fibula below, joint space between
            j, tilt = dy + rng.uniform(-0.1, 0.1), rng.normal(0, 0.08)

            def at(px: float, py: float) -> tuple[float, float]:
                return dx + k * px + tilt * py, py + (j if py > -0.95 and py < 0.95 else 0.0)

            soft.polygon([at(-0.6, -1), at(0.6, -1), at(0.55, 1), at(-0.55, 1)])
            bone.polygon([at(-0.22, -1), at(0.22, -1), at(0.35, -0.1), at(0.32, 0.0), at(-0.32, 0.0), at(-0.35, -0.1)])
            bone.polygon([at(-0.33, 0.08), at(0.33, 0.08), at(0.25, 0.3), at(0.18, 1), at(-0.18, 1), at(-0.25, 0.3)])
            bone.line([at(0.32, 0.2), at(0.3, 1)], 0.06)
        img = 0.05 + 0.35 * soft.mask(2.0) + 0.45 * bone.mask(0.8)
        img = img + 0.03 * smooth_noise(rng, size, 20) + 0.02 * smooth_noise(rng, size, 40) * bone.mask(0.8)
        return self._finish(np.clip(img, 0, 1))
