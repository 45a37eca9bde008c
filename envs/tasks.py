"""Task templates: a user's request plus what a correct system must do with it.

A template names its target classes as sets of concepts, so the answer key for any concrete
environment (which sites qualify, which native label maps to which class) is derived, never typed
by hand. Algorithm families come from the ``algorithms`` catalog's categories.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from algorithms.catalog import family
from envs.concepts import CONCEPTS, Modality

#: Algorithm families a task's acceptable set is built from, derived from the catalog's categories
#: (``CatalogEntry.category`` and ``also_fits``), so a new algorithm joins the families it fits.
GENERIC: Final = family("generic")
LABEL_SKEW: Final = family("label_skew")
PERSONALISED: Final = family("feature_skew", "personalised")

Goal = Literal["none", "feature_skew", "label_skew"]


class TaskTemplate(BaseModel):
    """One user request with its machine-checkable meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str = Field(pattern=r"^[a-z0-9-]+$")
    modality: Modality
    request: str = Field(min_length=20, description="the user's one sentence")
    target_classes: dict[str, tuple[str, ...]] = Field(description="class name -> concepts it gathers")
    acceptable_algorithms: tuple[str, ...]
    implicit_goal: Goal = Field(
        default="none", description="what the request implies without naming it (drives the algorithm choice)"
    )
    implicit_labels: bool = Field(default=False, description="the request implies, not names, the label set")
    task_type: Literal["classification", "grading"] = "classification"

    @model_validator(mode="after")
    def _concepts_known_and_disjoint(self) -> TaskTemplate:
        seen: set[str] = set()
        for cls, concepts in self.target_classes.items():
            for concept in concepts:
                if concept not in CONCEPTS[self.modality]:
                    raise ValueError(f"{self.task_id}: class {cls!r} uses unknown concept {concept!r}")
                if concept in seen:
                    raise ValueError(f"{self.task_id}: concept {concept!r} is in two target classes")
                seen.add(concept)
        if len(self.target_classes) < 2:
            raise ValueError(f"{self.task_id}: a task needs at least two target classes")
        return self

    def class_of(self, concept: str | None) -> str | None:
        """The target class a concept belongs to, or None when the task drops it."""
        for cls, concepts in self.target_classes.items():
            if concept in concepts:
                return cls
        return None
