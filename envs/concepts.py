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


#: How clinicians write each concept in a task spec: names, abbreviations, plurals and spellings (a
#: concept's own name, with spaces or underscores, always counts). This table is the answer key's side
#: of the vocabulary: the grader resolves a spec's findings with it, and no player's rules share it, so
#: a player's synonym bug cannot make the grader agree with the player.
FINDING_NAMES: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "dermatoscopy": {
        "melanoma": ("melanomas", "malignant melanoma", "mel", "mm"),
        "nevus": ("nevi", "naevus", "naevi", "melanocytic nevus", "melanocytic nevi", "mole", "moles", "nv",
                  "benign nevus", "common nevus"),
        "basal_cell_carcinoma": ("basal cell carcinomas", "bcc", "basalioma"),
        "benign_keratosis": ("benign keratoses", "bkl", "seborrheic keratosis", "seborrhoeic keratosis",
                             "solar lentigo", "lichen planus like keratosis", "benign keratosis like lesion",
                             "benign keratosis like lesions"),
        "actinic_keratosis": ("actinic keratoses", "akiec", "ak", "bowen's disease", "bowen disease",
                              "intraepithelial carcinoma"),
        "vascular_lesion": ("vascular lesions", "vasc", "angioma", "hemangioma", "haemangioma",
                            "pyogenic granuloma"),
    },
    "fundus": {
        "normal": ("no dr", "no diabetic retinopathy", "no retinopathy", "healthy", "healthy retina"),
        "dr_mild": ("mild dr", "mild npdr", "mild diabetic retinopathy", "mild non proliferative diabetic retinopathy"),
        "dr_moderate": ("moderate dr", "moderate npdr", "moderate diabetic retinopathy",
                        "moderate non proliferative diabetic retinopathy"),
        "dr_severe": ("severe dr", "severe npdr", "severe diabetic retinopathy",
                      "severe non proliferative diabetic retinopathy"),
        "dr_proliferative": ("proliferative dr", "pdr", "proliferative diabetic retinopathy"),
        "glaucoma": ("glaucomatous", "glaucoma suspect"),
        "amd": ("age related macular degeneration", "macular degeneration", "armd"),
    },
    "histopathology": {
        "normal": ("normal tissue", "normal mucosa", "healthy tissue", "non tumor", "non tumour"),
        "benign": ("benign tissue", "benign lesion"),
        "tumor": ("tumour", "tumors", "tumours", "tumor tissue", "tumour tissue", "cancer", "carcinoma",
                  "adenocarcinoma", "metastasis", "metastatic tissue", "malignant"),
        "lymphocytes": ("lymphocyte", "lymphocytic infiltrate", "lymph"),
        "stroma": ("stromal tissue", "cancer associated stroma"),
        "adipose": ("adipose tissue", "fat", "fat tissue"),
    },
    "mri": {
        "no_tumor": ("no tumour", "no tumor", "notumor", "healthy", "healthy brain", "normal"),
        "glioma": ("gliomas", "glioma tumor", "glioma tumour", "glioblastoma"),
        "meningioma": ("meningiomas", "meningioma tumor", "meningioma tumour"),
        "pituitary": ("pituitary tumor", "pituitary tumour", "pituitary adenoma", "pituitary tumors"),
    },
    "ultrasound": {
        "normal": ("no lesion", "normal tissue", "normal breast"),
        "benign": ("benign lesion", "benign mass", "benign tumor", "benign tumour", "fibroadenoma"),
        "malignant": ("malignant lesion", "malignant mass", "malignant tumor", "malignant tumour", "cancer",
                      "carcinoma", "breast cancer"),
    },
    "xray": {
        "normal": ("no finding", "no findings", "healthy", "normal chest"),
        "pneumonia": ("pneumonias", "bacterial pneumonia", "viral pneumonia", "lung opacity"),
        "covid19": ("covid 19", "covid", "sars cov 2", "covid pneumonia"),
        "tuberculosis": ("tb", "pulmonary tuberculosis"),
        "effusion": ("effusions", "pleural effusion"),
    },
}


def finding_key(name: str) -> str:
    """A finding's name as compared: case, underscores, hyphens and repeated spaces ignored."""
    text = str(name).lower().replace("_", " ").replace("-", " ")
    return " ".join(text.split())


def _finding_index() -> dict[str, dict[str, str]]:
    index: dict[str, dict[str, str]] = {}
    for modality, concepts in CONCEPTS.items():
        table = index.setdefault(modality, {})
        names = FINDING_NAMES[modality]
        unknown = set(names) - set(concepts)
        if unknown:
            raise ValueError(f"FINDING_NAMES[{modality!r}] names unknown concepts {sorted(unknown)}")
        for concept in concepts:
            for name in (concept, *names.get(concept, ())):
                key = finding_key(name)
                if table.get(key, concept) != concept:
                    raise ValueError(f"{modality}: {name!r} names both {table[key]} and {concept}")
                table[key] = concept
    return index


FINDINGS: Final[dict[str, dict[str, str]]] = _finding_index()


def concept_named(modality: str, name: str) -> str | None:
    """The concept a finding's name means in ``modality`` (None: not a finding the key knows)."""
    return FINDINGS[check_modality(modality)].get(finding_key(name))
