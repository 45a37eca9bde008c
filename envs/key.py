"""The answer key an environment writes beside (never inside) its client sites.

Everything a scorer needs to judge the seven roles is here: which datasets fit which task, the
truth about every raw file, the correct label maps, and each site's label and feature statistics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: What a raw file really is. ``image`` is a clean, usable image of its dataset.
FileRole = Literal[
    "image",  # a clean image of the dataset (its label may still be noisy: see FileTruth.noisy)
    "duplicate",  # a near-duplicate (resized / re-encoded / cropped copy) of ``duplicate_of``
    "offtopic",  # an image that does not belong to the modality (another modality, a photo of a form)
    "corrupt",  # an image file that cannot be decoded (truncated, empty, wrong bytes)
    "non_image",  # a stray file: text, spreadsheet, Thumbs.db, ...
    "mask",  # a segmentation mask (not a training image)
    "metadata",  # the dataset's own label file (labels.csv, labels.json)
]

SiteKind = Literal["fit", "wrong_body_part", "segmentation_only", "other_modality"]
MessKind = Literal[
    "duplicate", "offtopic", "corrupt", "non_image", "mask", "label_noise", "identifiers", "injection",
    "mixed_modes",
]


class FileTruth(BaseModel):
    """The truth about one file under a site's ``raw/``."""

    model_config = ConfigDict(extra="forbid")

    role: FileRole
    concept: str | None = Field(default=None, description="true concept of the pictured finding")
    given_label: str | None = Field(default=None, description="the native label the site's metadata gives")
    noisy: bool = Field(default=False, description="given_label names another concept than the true one")
    duplicate_of: str | None = None
    note: str | None = Field(default=None, description="e.g. how a duplicate was made, what a corrupt file is")


class DatasetKey(BaseModel):
    """One dataset as materialised at one site."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the catalog card's name")
    folder: str = Field(description="path under the site's raw/")
    layout: str
    card_modality: str
    body_part: str
    task_type: str
    native_labels: list[str] = Field(description="label names as this site writes them")
    label_concepts: dict[str, str | None] = Field(description="site label name -> true concept")
    label_legend: dict[str, str] = Field(default_factory=dict, description="numeric code -> name, if coded")
    files: dict[str, FileTruth] = Field(description="path relative to raw/ -> truth")
    injected: dict[str, int] = Field(default_factory=dict, description="messiness kind -> count injected")
    concept_counts: dict[str, int] = Field(default_factory=dict, description="true concept -> clean images")


class SiteKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: str
    kind: SiteKind
    style: dict = Field(description="the site's scanner style (feature skew), as ScannerStyle.describe()")
    image_size: int = Field(description="the site's typical stored image side in pixels")
    datasets: list[DatasetKey]
    feature_stats: dict[str, float] = Field(default_factory=dict, description="mean/std intensity etc.")


class TaskKey(BaseModel):
    """A task template resolved against one environment."""

    model_config = ConfigDict(extra="forbid")

    task_id: str
    request: str
    modality: str
    target_classes: dict[str, list[str]]
    acceptable_algorithms: list[str]
    implicit_goal: str
    implicit_labels: bool
    task_type: str
    qualifying: dict[str, list[str]] = Field(description="site -> datasets that fit the task (sites absent: none)")
    label_maps: dict[str, dict[str, dict[str, str | None]]] = Field(
        description="site -> dataset -> site label name -> target class (None: drop)"
    )
    class_counts: dict[str, dict[str, int]] = Field(description="site -> target class -> clean images")


class AnswerKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: str
    seed: int
    scale: float
    builder_version: str
    sites: dict[str, SiteKey]
    tasks: dict[str, TaskKey]
    injection_text: str = Field(description="the planted prompt-injection sentence, to search outputs for")
    identifiers: list[str] = Field(description="every planted patient identifier, to search outputs for")

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=1), encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> AnswerKey:
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))

    def files_with_role(self, role: FileRole) -> list[tuple[str, str]]:
        """(site, raw-relative path) of every file with ``role``, across sites."""
        return [
            (site.site_id, path)
            for site in self.sites.values()
            for ds in site.datasets
            for path, truth in ds.files.items()
            if truth.role == role
        ]
