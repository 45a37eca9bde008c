"""The six modality environments; each module meets :class:`envs.modalities.base.ModalityEnv`."""

from __future__ import annotations

import importlib
from types import ModuleType

from envs.concepts import MODALITIES, check_modality


def get_modality(modality: str) -> ModuleType:
    """The environment module of ``modality`` (ValueError lists valid names)."""
    return importlib.import_module(f"envs.modalities.{check_modality(modality)}")


def all_modalities() -> dict[str, ModuleType]:
    """Every modality environment, by name."""
    return {m: get_modality(m) for m in MODALITIES}
