"""H&E-stained histology tiles (colorectal-style tissue classes).

Each tile is drawn as haematoxylin (nuclei, blue-purple) and eosin (cytoplasm, fibres, pink)
densities and turned into RGB with the Beer-Lambert law and reference stain vectors, exactly the
model stain-normalisation methods assume, so ``ScannerStyle.stain`` can re-stain it per site. Class
evidence is architecture and nuclear morphology: regular small glands (normal), larger but orderly
glands (benign), crowded pleomorphic dark nuclei without order (tumour), sheets of small round
lymphocytes, wavy pink fibres with spindle nuclei (stroma), empty fat cells with thin membranes.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from envs.synth.base import BaseRenderer
from envs.synth.primitives import Array, Canvas, blur, grid, lerp, smooth_noise
from envs.synth.style import HE_REFERENCE


def _he_to_rgb(h: Array, e: Array) -> Array:
    od = h[..., None] * HE_REFERENCE[0] + e[..., None] * HE_REFERENCE[1]
    return np.exp(-od).astype(np.float32)


def _nuclei(c: Canvas, rng: np.random.Generator, x: Array, y: Array, rx: Array, ry: Array, ang: Array,
            value: Array, wobble: float) -> None:
    """Draw many wobbly, rotated ellipses at once (all randomness drawn in one batch)."""
    n = len(x)
    if n == 0:
        return
    t = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    r = 1 + wobble * rng.uniform(-1, 1, size=(n, t.size))
    px, py = rx[:, None] * r * np.cos(t), ry[:, None] * r * np.sin(t)
    ca, sa = np.cos(ang)[:, None], np.sin(ang)[:, None]
    scale = c.size * c.ss * 0.5
    qx = (x[:, None] + px * ca - py * sa + 1.0) * scale
    qy = (y[:, None] + px * sa + py * ca + 1.0) * scale
    pts = np.stack([qx, qy], axis=2).tolist()
    for poly, v in zip(pts, np.asarray(value, dtype=int).tolist()):
        c.draw.polygon([tuple(p) for p in poly], fill=v)


def _nucleus(c: Canvas, x: float, y: float, rx: float, ry: float, ang: float, value: int, wobble: float,
             rng: np.random.Generator) -> None:
    _nuclei(c, rng, np.array([x]), np.array([y]), np.array([rx]), np.array([ry]), np.array([ang]),
            np.array([value]), wobble)


class HistopathologyRenderer(BaseRenderer):
    """Renderer for the histopathology modality (RGB, H&E)."""

    modality = "histopathology"
    default_difficulty = 0.9

    def _background(self, rng, size: int, e_level: float) -> tuple[Array, Array]:
        e = e_level * (1.0 + 0.25 * smooth_noise(rng, size, 10) + 0.15 * smooth_noise(rng, size, 40))
        h = 0.04 * (1.0 + smooth_noise(rng, size, 20))
        return np.clip(h, 0, None), np.clip(e, 0, None)

    def _scatter_nuclei(self, rng, c: Canvas, n: int, r: tuple[float, float], elong: float = 1.2,
                        value: tuple[int, int] = (150, 220), wobble: float = 0.1, where=None) -> None:
        x, y = rng.uniform(-1.05, 1.05, size=(2, n))
        if where is not None:
            keep = np.array([bool(where(a, b)) for a, b in zip(x, y)], dtype=bool)
            x, y = x[keep], y[keep]
        rr = rng.uniform(*r, size=len(x))
        rx = rr * rng.uniform(1.0, elong, size=len(x))
        _nuclei(c, rng, x, y, rx, rr, rng.uniform(0, np.pi, size=len(x)), rng.integers(*value, size=len(x)), wobble)

    def _glands(self, rng, size: int, d: float, radius: float, jitter: float, nuc_r: float,
                crowding: float) -> Array:
        h, e = self._background(rng, size, 0.35)
        lumen, epi = Canvas(size, 2), Canvas(size, 2)
        nuc = Canvas(size, 2)
        step = radius * 2.5
        offs = rng.uniform(0, step, size=2)
        centres = []
        for i, gy in enumerate(np.arange(-1.2 + offs[1], 1.2, step * 0.87)):
            for gx in np.arange(-1.2 + offs[0] + (i % 2) * step / 2, 1.2, step):
                centres.append((gx + rng.normal(0, jitter * step), gy + rng.normal(0, jitter * step)))
        for x, y in centres:
            rx, ry = radius * rng.uniform(0.85, 1.15), radius * rng.uniform(0.7, 1.1)
            epi.ellipse(x, y, rx, ry)
            lumen.ellipse(x, y, rx * 0.55, ry * 0.55)
            n = int(2 * np.pi * radius / (nuc_r * 2.2) * crowding)
            t = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 1)
            q = 0.8 + rng.normal(0, 0.04 * (1 + 3 * d), size=n)
            _nuclei(nuc, rng, x + rx * q * np.cos(t), y + ry * q * np.sin(t), np.full(n, nuc_r * 1.6),
                    np.full(n, nuc_r), t, rng.integers(150, 210, size=n), 0.1)
        self._scatter_nuclei(rng, nuc, int(120 * radius), (0.012, 0.018), value=(120, 190))
        em, lm = epi.mask(0.5), lumen.mask(0.5)
        e = e * (1 - em) + 0.28 * em
        e = e * (1 - lm) + 0.03 * lm
        h = h * (1 - lm) + 2.0 * nuc.mask(0.4)
        return _he_to_rgb(h, e)

    def _post(self, out, concept, rng, size, d):
        """Mix in a patch of another tissue: real tiles are rarely pure, and the share grows with
        difficulty (36-60% of the tile at difficulty 1), so the label is the dominant tissue."""
        share = 0.6 * d
        if concept is None or share < 0.02:
            return out
        others = [c for c in self.concepts if c != concept]
        other = getattr(self, f"_draw_{others[int(rng.integers(len(others)))]}")(rng, size, d * 0.5)
        field = smooth_noise(rng, size, 3)
        cut = np.quantile(field, 1.0 - share * rng.uniform(0.6, 1.0))
        m = blur((field > cut).astype(np.float32), 1.0)[..., None]
        return out * (1 - m) + other * m

    def _draw_normal(self, rng, size, d):
        return self._glands(rng, size, d, rng.uniform(0.16, 0.2), lerp(0.08, 0.15, d), 0.017, 1.0)

    def _draw_benign(self, rng, size, d):
        return self._glands(rng, size, d, rng.uniform(lerp(0.3, 0.24, d), 0.34), lerp(0.08, 0.15, d), 0.02, 1.25)

    def _draw_tumor(self, rng, size, d):
        h, e = self._background(rng, size, 0.45)
        nuc = Canvas(size, 2)
        pleo = lerp(1.0, 0.6, d)
        self._scatter_nuclei(rng, nuc, int(lerp(260, 180, d)), (0.02, 0.02 + 0.025 * pleo), elong=1.6,
                             value=(170, 255), wobble=0.25 * pleo)
        lum = Canvas(size, 2)  # ragged cribriform spaces
        for _ in range(int(rng.integers(1, 5))):
            x, y = rng.uniform(-0.8, 0.8, size=2)
            _nucleus(lum, x, y, rng.uniform(0.04, 0.1), rng.uniform(0.03, 0.07), rng.uniform(0, 3), 255, 0.4, rng)
        lm = lum.mask(0.5)
        h = (h + 2.2 * nuc.mask(0.4)) * (1 - lm)
        e = e * (1 - lm) + 0.03 * lm
        return _he_to_rgb(h, e)

    def _draw_lymphocytes(self, rng, size, d):
        h, e = self._background(rng, size, 0.25)
        nuc = Canvas(size, 2)
        self._scatter_nuclei(rng, nuc, int(lerp(520, 380, d)), (0.016, 0.021), elong=1.08,
                             value=(200, 255), wobble=0.05)
        return _he_to_rgb(h + 2.2 * nuc.mask(0.3), e)

    def _draw_stroma(self, rng, size, d):
        yy, xx = grid(size)
        ang = rng.uniform(0, np.pi)
        u = xx * np.cos(ang) + yy * np.sin(ang) + 0.15 * smooth_noise(rng, size, 4)
        fibres = 0.5 + 0.5 * np.sin(u * rng.uniform(35, 55) + 1.5 * smooth_noise(rng, size, 6))
        h, e = self._background(rng, size, 0.45)
        e = e * (0.55 + 0.6 * fibres)
        nuc = Canvas(size, 2)
        for _ in range(int(rng.integers(15, 35))):
            x, y = rng.uniform(-1, 1, size=2)
            _nucleus(nuc, x, y, 0.05, 0.011, ang + rng.normal(0, 0.2), int(rng.integers(150, 220)), 0.05, rng)
        return _he_to_rgb(h + 1.8 * nuc.mask(0.4), e)

    def _draw_adipose(self, rng, size, d):
        yy, xx = grid(size)
        pts = rng.uniform(-1.3, 1.3, size=(int(rng.integers(12, 28)), 2))
        dist, _ = cKDTree(pts).query(np.stack([xx.ravel(), yy.ravel()], 1), k=2)
        gap = (dist[:, 1] - dist[:, 0]).reshape(size, size)
        membrane = np.clip(1 - gap / 0.025, 0, 1)
        _h, e = self._background(rng, size, 0.05)
        e = 0.03 + 0.45 * membrane * (0.8 + 0.2 * smooth_noise(rng, size, 20))
        nuc = Canvas(size, 2)
        for _ in range(int(rng.integers(0, 5))):
            i = int(rng.integers(len(pts)))
            _nucleus(nuc, pts[i, 0] + 0.1, pts[i, 1], 0.03, 0.012, rng.uniform(0, 3), 200, 0.05, rng)
        return _he_to_rgb(0.02 + 1.6 * nuc.mask(0.4) * membrane.clip(0.3, 1), e)

    def _draw_other(self, rng, size, d):
        """Necrotic debris: granular pink with karyorrhectic nuclear dust and ghost cells."""
        h, e = self._background(rng, size, 0.4)
        e = e * (0.7 + 0.3 * np.clip(smooth_noise(rng, size, 50), -1, 1))
        dust = Canvas(size, 2)
        self._scatter_nuclei(rng, dust, 250, (0.004, 0.008), value=(150, 255), wobble=0.3)
        ghosts = Canvas(size, 2)
        self._scatter_nuclei(rng, ghosts, 40, (0.03, 0.05), value=(40, 80), wobble=0.2)
        return _he_to_rgb(h + 2.0 * dust.mask(0.3) + 0.6 * ghosts.mask(0.8), e)

    def render_other_anatomy(self, rng: np.random.Generator, size: int):
        """A peripheral blood smear: pink red cells with central pallor, the odd purple leucocyte."""
        bg = np.full((size, size, 3), 0.93, np.float32)
        bg[..., 2] = 0.9
        rbc, pallor, wbc = Canvas(size, 2), Canvas(size, 2), Canvas(size, 2)
        for _ in range(int(rng.integers(40, 70))):
            x, y = rng.uniform(-1, 1, size=2)
            r = rng.uniform(0.07, 0.09)
            rbc.ellipse(x, y, r, r * rng.uniform(0.9, 1))
            pallor.ellipse(x, y, r * 0.4, r * 0.4)
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(-0.7, 0.7, size=2)
            for _ in range(3):
                wbc.ellipse(x + rng.normal(0, 0.03), y + rng.normal(0, 0.03), 0.05, 0.04)
        m = rbc.mask(0.6) - 0.5 * pallor.mask(1.0)
        img = bg + m[..., None] * (np.array([0.88, 0.55, 0.6], np.float32) - bg)
        img = img + wbc.mask(0.5)[..., None] * (np.array([0.4, 0.25, 0.6], np.float32) - img)
        return self._finish(blur(img, 0.4))
