"""The contract every modality environment meets (checked by a test, never by getattr fallbacks)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from envs.concepts import Modality
from envs.tasks import TaskTemplate


@runtime_checkable
class ModalityEnv(Protocol):
    """What the builder needs to know about one modality beyond its cards and renderer."""

    #: The modality's name.
    MODALITY: Modality
    #: Task templates with answer keys, at least three, one with an implicit goal.
    TASKS: tuple[TaskTemplate, ...]
    #: concept -> alternative names hospitals use for it (sites rename native labels with these).
    LABEL_VARIANTS: dict[str, tuple[str, ...]]
    #: (min, max) number of client sites.
    SITE_RANGE: tuple[int, int]
    #: Modalities whose data can turn up at this modality's sites by mistake.
    NEIGHBOUR_MODALITIES: tuple[Modality, ...]
