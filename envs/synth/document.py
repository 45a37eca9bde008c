"""Off-topic image: a phone photo of a paper form lying on a desk (hospitals' scans get mixed in)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def render_document(rng: np.random.Generator, size: int) -> Image.Image:
    """Render an RGB photo of a printed form: a slightly rotated page with text lines and boxes."""
    ss = 2
    big = size * ss
    desk = tuple(int(v) for v in rng.integers(60, 160, size=3))
    img = Image.new("RGB", (big, big), desk)
    page = Image.new("RGB", (int(big * 0.78), int(big * 0.95)), (245, 243, 236))
    pd = ImageDraw.Draw(page)
    pw, ph = page.size
    u = max(1, big // 128)
    pd.rectangle((pw * 0.08, ph * 0.05, pw * 0.5, ph * 0.1), fill=(40, 40, 60))  # title block
    y = ph * 0.15
    while y < ph * 0.92:
        kind = rng.random()
        if kind < 0.2:  # a form box with a label
            pd.rectangle((pw * 0.08, y, pw * 0.92, y + 6 * u), outline=(60, 60, 60), width=u)
            pd.rectangle((pw * 0.1, y + 2 * u, pw * 0.3, y + 3 * u), fill=(70, 70, 70))
            y += 9 * u
        else:  # a line of words
            x = pw * 0.08
            end = pw * rng.uniform(0.5, 0.92)
            while x < end:
                w = rng.uniform(3, 10) * u
                pd.rectangle((x, y, x + w, y + 1.5 * u), fill=(50, 50, 55))
                x += w + 2 * u
            y += 4.5 * u
    page = page.rotate(float(rng.uniform(-12, 12)), expand=True, fillcolor=(0, 0, 0, 0),
                       resample=Image.Resampling.BILINEAR)
    mask = page.convert("L").point(lambda v: 255 if v > 0 else 0)
    ox = int((big - page.size[0]) / 2 + rng.uniform(-0.05, 0.05) * big)
    oy = int((big - page.size[1]) / 2 + rng.uniform(-0.05, 0.05) * big)
    img.paste(page, (ox, oy), mask)
    # uneven lighting from the phone and a little blur
    arr = np.asarray(img, dtype=np.float32)
    ramp = np.linspace(rng.uniform(0.75, 0.95), rng.uniform(0.95, 1.05), big, dtype=np.float32)
    arr *= ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(0.6 * ss))
    return img.resize((size, size), Image.Resampling.BILINEAR)
