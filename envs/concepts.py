"""The clinical concepts each modality's environments can show.

A concept is the ground truth behind a label name. Dataset cards map their *native* label names
(`MEL`, `0`..`4`, `malignant`) onto these concepts; the synthetic renderers draw images of a concept;
tasks name their target classes as sets of concepts. Keeping one vocabulary here is what lets the
answer key say exactly which native name belongs to which target class.
"""

from __future__ import annotations

from typing import Final, Literal

Modality = Literal["dermatoscopy", "fundus", "histopathology", "mri", "ultrasound", "xray"]

MODALITIES: Final[tuple[Modality, ...]] = (
    "dermatoscopy",
    "fundus",
    "histopathology",
    "mri",
    "ultrasound",
    "xray",
)

#: Concepts a renderer can draw, per modality. A native label outside these maps to ``None``
#: ("other": drawn as a generic finding of the modality, never a target of any task).
CONCEPTS: Final[dict[str, tuple[str, ...]]] = {
    "dermatoscopy": (
        "melanoma",
        "nevus",
        "basal_cell_carcinoma",
        "benign_keratosis",
        "actinic_keratosis",
        "vascular_lesion",
    ),
    "fundus": (
        "normal",
        "dr_mild",
        "dr_moderate",
        "dr_severe",
        "dr_proliferative",
        "glaucoma",
        "amd",
    ),
    "histopathology": ("normal", "benign", "tumor", "lymphocytes", "stroma", "adipose"),
    "mri": ("no_tumor", "glioma", "meningioma", "pituitary"),
    "ultrasound": ("normal", "benign", "malignant"),
    "xray": ("normal", "pneumonia", "covid19", "tuberculosis", "effusion"),
}

#: The body part a modality's tasks are about; cards with another body part do not fit its tasks.
PRIMARY_BODY_PART: Final[dict[str, str]] = {
    "dermatoscopy": "skin",
    "fundus": "retina",
    "histopathology": "tissue",
    "mri": "brain",
    "ultrasound": "breast",
    "xray": "chest",
}

#: Image channels as the modality is usually stored.
CHANNELS: Final[dict[str, int]] = {
    "dermatoscopy": 3,
    "fundus": 3,
    "histopathology": 3,
    "mri": 1,
    "ultrasound": 1,
    "xray": 1,
}


def check_modality(modality: str) -> Modality:
    """Return ``modality`` if known, else raise a ValueError that lists the valid names."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; choose one of: {', '.join(MODALITIES)}")
    return modality  # type: ignore[return-value]


def check_concept(modality: str, concept: str) -> str:
    """Return ``concept`` if the modality knows it, else raise a ValueError listing the valid ones."""
    known = CONCEPTS[check_modality(modality)]
    if concept not in known:
        raise ValueError(f"unknown {modality} concept {concept!r}; choose one of: {', '.join(known)}")
    return concept
