"""Save one contact sheet per modality so a person can judge the synthetic images at a glance.

Rows: every concept, then "other" (None), then other anatomy. Columns: a few samples; the right-hand
half gets a randomly sampled scanner style. Usage:
    python benchmarks/contact_sheet.py [--out /tmp/synth_sheets] [--size 128] [--cols 6] [--difficulty D]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from envs.concepts import MODALITIES
from envs.synth import ScannerStyle, get_renderer, render_document


def contact_sheet(modality: str, size: int = 128, cols: int = 6, seed: int = 0,
                  difficulty: float | None = None) -> Image.Image:
    """Return the sheet for one modality (rows = concepts + other + other anatomy)."""
    r = get_renderer(modality)
    rows: list[str | None] = [*r.concepts, None, "<anatomy>"]
    label_w = 110
    sheet = Image.new("RGB", (label_w + cols * size, len(rows) * size), (40, 40, 40))
    draw = ImageDraw.Draw(sheet)
    rng = np.random.default_rng(seed)
    for i, concept in enumerate(rows):
        draw.text((4, i * size + size // 2 - 6), str(concept if concept else "other"), fill=(255, 255, 255))
        for j in range(cols):
            if concept == "<anatomy>":
                img = r.render_other_anatomy(rng, size)
            else:
                img = r.render(concept, rng, size, difficulty)
            if j >= cols // 2:
                img = ScannerStyle.sample(modality, rng).apply(img, rng)
            sheet.paste(img.convert("RGB"), (label_w + j * size, i * size))
    return sheet


def main() -> None:
    """Write one sheet per modality plus a document sample."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="/tmp/synth_sheets")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--difficulty", type=float, default=None)
    ap.add_argument("--modality", action="append", default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for m in args.modality or MODALITIES:
        path = out / f"{m}.png"
        contact_sheet(m, args.size, args.cols, difficulty=args.difficulty).save(path)
        print(path)
    render_document(np.random.default_rng(0), 256).save(out / "document.png")


if __name__ == "__main__":
    main()
