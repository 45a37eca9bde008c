"""Synthetic medical images per modality, with per-hospital scanner styles.

Real patient data cannot be downloaded here, so the environment builder draws images whose classes
differ the way clinicians tell them apart (shape, border, texture, lesion type, count and place),
never by a global colour shift, and whose difficulty is calibrated so that a small CNN learns them
well but not perfectly (see ``envs.synth.learnability``).

Example:
    >>> import numpy as np
    >>> r = get_renderer("fundus")
    >>> img = r.render("glaucoma", np.random.default_rng(0), 128)
    >>> img.mode, img.size
    ('RGB', (128, 128))
"""

from __future__ import annotations

from functools import cache

from envs.concepts import MODALITIES
from envs.synth.base import BaseRenderer, Renderer
from envs.synth.dermatoscopy import DermatoscopyRenderer
from envs.synth.document import render_document
from envs.synth.fundus import FundusRenderer
from envs.synth.histopathology import HistopathologyRenderer
from envs.synth.mri import MRIRenderer
from envs.synth.style import ScannerStyle
from envs.synth.ultrasound import UltrasoundRenderer
from envs.synth.xray import XrayRenderer

_RENDERERS: dict[str, type[BaseRenderer]] = {
    cls.modality: cls
    for cls in (
        DermatoscopyRenderer,
        FundusRenderer,
        HistopathologyRenderer,
        MRIRenderer,
        UltrasoundRenderer,
        XrayRenderer,
    )
}

#: Difficulty per modality at which a small CNN trained for about a minute on one CPU core reaches
#: roughly 0.75-0.9 balanced accuracy over all the modality's concepts (benchmarks/learnability.py).
DEFAULT_DIFFICULTY: dict[str, float] = {m: cls.default_difficulty for m, cls in _RENDERERS.items()}


@cache
def get_renderer(modality: str) -> Renderer:
    """Return the (stateless, shared) renderer of ``modality``.

    Raises:
        ValueError: if the modality is unknown; the message lists the known ones.
    """
    if modality not in _RENDERERS:
        raise ValueError(f"no renderer for modality {modality!r}; choose one of: {', '.join(MODALITIES)}")
    return _RENDERERS[modality]()


__all__ = ["DEFAULT_DIFFICULTY", "Renderer", "ScannerStyle", "get_renderer", "render_document"]
