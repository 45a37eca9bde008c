"""Reading any image file a hospital stores (PNG/JPEG/TIFF/BMP, DICOM, NIfTI) as a PIL image.

One reader for every layer that needs pixels from raw data: the preprocessing tools and the
environment's oracle preparation must decode a file the same way, or their outputs would differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PLAIN_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
MEDICAL_SUFFIXES = (".dcm", ".nii", ".nii.gz")


class UnreadableImage(ValueError):
    """The file has an image name but cannot be decoded (truncated, empty, not an image)."""


def is_image_name(path: str | Path) -> bool:
    name = str(path).lower()
    return name.endswith(PLAIN_SUFFIXES + MEDICAL_SUFFIXES)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    return ((arr - lo) / (hi - lo) * 255).round().astype(np.uint8)


def read_image(path: str | Path, min_side: int | None = None) -> Image.Image:
    """Decode ``path`` to an 8-bit ``L`` or ``RGB`` image.

    DICOM: the pixel array, min-max scaled. NIfTI: the middle axial slice (the slice the labels refer
    to in our environments and a common default for 2D classification), min-max scaled.

    Args:
        path: the file.
        min_side: a caller that only needs a small image (cleaning fingerprints) says the side it
            needs; a JPEG is then decoded at the smallest DCT scale (1/2 to 1/8) that keeps both
            sides at least this long, several times faster than a full decode of a large scan. The
            stored size stays in ``img.info["original_size"]``. Other formats decode in full.

    Raises:
        UnreadableImage: the file cannot be decoded; the message says why.
    """
    p = Path(path)
    name = p.name.lower()
    try:
        if name.endswith(".dcm"):
            import pydicom

            arr = pydicom.dcmread(p).pixel_array
            return Image.fromarray(_to_uint8(arr) if arr.dtype != np.uint8 else arr)
        if name.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            vol = np.asarray(nib.load(p).get_fdata())
            sl = vol[..., vol.shape[-1] // 2] if vol.ndim == 3 else vol
            return Image.fromarray(_to_uint8(sl.T))
        with Image.open(p) as im:
            original_size = im.size
            if min_side and im.format == "JPEG":
                im.draft("L" if im.mode == "L" else "RGB", (min_side, min_side))
            im.load()
            im.info["original_size"] = original_size
            return im.convert("RGB") if im.mode not in ("L", "RGB") else im.copy()
    except Exception as exc:  # decoders raise many types; callers need one
        raise UnreadableImage(f"{p.name}: cannot decode ({type(exc).__name__}: {exc})"[:300]) from exc
