"""The dataset catalog: one validated card per real public dataset.

Cards are data (``envs/catalog/<modality>.yaml``), checked by :class:`DatasetCard` on load, so a
typo in a label map or an unknown modality fails loudly instead of producing a silently wrong
environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from envs.concepts import CONCEPTS, MODALITIES, Modality

CATALOG_DIR = Path(__file__).parent / "catalog"

TaskType = Literal["classification", "segmentation", "detection", "grading"]
FileFormat = Literal["png", "jpg", "tif", "bmp", "dcm", "nii.gz", "mha", "mixed"]
Layout = Literal["class_folders", "flat_csv", "flat_json", "nested_patient", "dicom", "nifti", "masks"]


class DatasetCard(BaseModel):
    """One real public dataset, as its publishers describe it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=2, description="the dataset's published name, unique in the catalog")
    modality: Modality
    body_part: str = Field(min_length=2, description="e.g. skin, retina, chest, brain, breast, hand")
    task_type: TaskType
    native_labels: tuple[str, ...] = Field(
        description="label names exactly as the original publishes them; empty for segmentation-only sets"
    )
    concepts: dict[str, str | None] = Field(
        default_factory=dict,
        description="native label -> concept from envs.concepts (None: outside the vocabulary)",
    )
    num_images: int = Field(gt=0)
    file_format: FileFormat
    layout: Layout = Field(description="how the public release is usually organised")
    license: str = Field(min_length=2)
    source: str = Field(min_length=4, description="citation or URL")
    description: str = Field(min_length=40, description="free text, as a hospital's data steward writes")

    @model_validator(mode="after")
    def _labels_and_concepts_agree(self) -> DatasetCard:
        if set(self.concepts) != set(self.native_labels):
            missing = set(self.native_labels) ^ set(self.concepts)
            raise ValueError(f"{self.name}: concepts must map exactly the native labels; differ on {missing}")
        known = CONCEPTS[self.modality]
        bad = [c for c in self.concepts.values() if c is not None and c not in known]
        if bad:
            raise ValueError(f"{self.name}: unknown {self.modality} concepts {bad}; valid: {known}")
        if self.task_type in ("classification", "grading") and not self.native_labels:
            raise ValueError(f"{self.name}: a {self.task_type} card needs native_labels")
        return self

    @property
    def fits_primary_body_part(self) -> bool:
        """Whether the card shows the body part its modality's tasks are about."""
        from envs.concepts import PRIMARY_BODY_PART

        return self.body_part == PRIMARY_BODY_PART[self.modality]


def load_cards(path: Path) -> list[DatasetCard]:
    """Load and validate every card in one YAML file (a list of mappings)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a YAML list of cards, got {type(raw).__name__}")  # noqa: TRY004  bad file content
    cards = []
    for i, item in enumerate(raw):
        try:
            cards.append(DatasetCard.model_validate(item))
        except Exception as exc:  # re-raise with the file and position, which pydantic does not know
            raise ValueError(f"{path.name} card #{i} ({(item or {}).get('name', '?')}): {exc}") from exc
    return cards


@lru_cache(maxsize=1)
def catalog() -> tuple[DatasetCard, ...]:
    """All cards of all modalities, validated; names are unique."""
    cards: list[DatasetCard] = []
    for modality in MODALITIES:
        path = CATALOG_DIR / f"{modality}.yaml"
        if path.exists():
            cards.extend(c for c in load_cards(path))
    names = [c.name for c in cards]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"duplicate card names in the catalog: {dupes}")
    return tuple(cards)


def cards_for(modality: str) -> list[DatasetCard]:
    """The cards of one modality, in catalog order."""
    return [c for c in catalog() if c.modality == modality]
