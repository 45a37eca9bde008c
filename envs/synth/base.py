"""The renderer contract and the shared base class of the six modality renderers."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from envs.concepts import CHANNELS, CONCEPTS


@runtime_checkable
class Renderer(Protocol):
    """Draws synthetic images of one modality's concepts.

    Attributes:
        modality: the modality name (a key of ``envs.concepts.CONCEPTS``).
        concepts: the concepts it can draw, equal to ``CONCEPTS[modality]``.
        channels: 1 (PIL mode "L") or 3 ("RGB"), equal to ``CHANNELS[modality]``.
    """

    modality: str
    concepts: tuple[str, ...]
    channels: int

    def render(
        self, concept: str | None, rng: np.random.Generator, size: int, difficulty: float | None = None
    ) -> Image.Image:
        """Render one image of ``concept`` (None = a finding outside the vocabulary)."""
        ...

    def render_other_anatomy(self, rng: np.random.Generator, size: int) -> Image.Image:
        """Render the same modality of a body part its tasks are not about."""
        ...


class BaseRenderer:
    """Validates arguments and dispatches to ``_draw_<concept>`` methods.

    Subclasses set ``modality`` and ``default_difficulty`` and implement one ``_draw_<concept>``
    per concept plus ``_draw_other`` and ``render_other_anatomy``; each returns a float array in
    [0, 1] (HxW for grey modalities, HxWx3 for colour) or a PIL image.
    """

    modality: str = ""
    default_difficulty: float = 0.5

    def __init__(self) -> None:
        self.concepts: tuple[str, ...] = CONCEPTS[self.modality]
        self.channels: int = CHANNELS[self.modality]
        self.mode = "L" if self.channels == 1 else "RGB"
        missing = [c for c in self.concepts if not hasattr(self, f"_draw_{c}")]
        if missing:  # a wiring error, caught when the renderer is built
            raise TypeError(f"{type(self).__name__} lacks _draw_ methods for: {', '.join(missing)}")

    def render(
        self, concept: str | None, rng: np.random.Generator, size: int, difficulty: float | None = None
    ) -> Image.Image:
        """Render one ``size`` x ``size`` image; see ``Renderer.render``."""
        if concept is not None and concept not in self.concepts:
            raise ValueError(
                f"unknown {self.modality} concept {concept!r}; choose one of: "
                f"{', '.join(self.concepts)} (or None for a finding outside the vocabulary)"
            )
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        d = self.default_difficulty if difficulty is None else float(difficulty)
        if not 0.0 <= d <= 1.0:
            raise ValueError(f"difficulty must lie in [0, 1], got {d}")
        name = "other" if concept is None else concept
        out = getattr(self, f"_draw_{name}")(rng, size, d)
        return self._finish(self._post(out, concept, rng, size, d))

    def _post(self, out, concept: str | None, rng: np.random.Generator, size: int, d: float):
        """Hook applied after drawing (e.g. mixing in other tissue); identity by default."""
        return out

    def _finish(self, out: np.ndarray | Image.Image) -> Image.Image:
        from envs.synth.primitives import to_image

        img = out if isinstance(out, Image.Image) else to_image(out, self.mode)
        return img.convert(self.mode) if img.mode != self.mode else img
