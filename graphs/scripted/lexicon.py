"""The scripted policy's medical knowledge: names of findings, and what public datasets' labels mean.

Built from public knowledge only (the concept vocabulary, the synonyms hospitals use, and the label
meanings each public dataset publishes on its catalog card), never from an environment's answer key:
``graphs`` may import ``envs.concepts``, ``envs.cards`` and ``envs.modalities``, never ``envs.key``,
``envs.build`` or ``envs.oracle`` (a test enforces it).
"""

from __future__ import annotations

import re
from functools import cache

from envs.cards import cards_for
from envs.concepts import CONCEPTS, PRIMARY_BODY_PART
from envs.modalities import get_modality

DATA_TAG = re.compile(r"</?data>")
#: Plurals, spellings and phrasings the variant lists do not carry.
EXTRA = {
    "dermatoscopy": {"nevi": "nevus", "naevi": "nevus", "moles": "nevus", "melanomas": "melanoma"},
    "fundus": {"healthy eyes": "normal", "no retinopathy": "normal"},
    "histopathology": {"normal mucosa": "normal", "adipose tissue": "adipose", "tumour": "tumor"},
    "mri": {"no tumour": "no_tumor", "no tumor": "no_tumor", "none": "no_tumor", "pituitary tumour": "pituitary",
            "gliomas": "glioma", "healthy scans": "no_tumor"},
    "ultrasound": {},
    "xray": {"normal scans": "normal", "other pneumonia": "pneumonia"},
}
#: For binary malignancy requests: which concepts are malignant, and which form the benign class.
MALIGNANT = {
    "dermatoscopy": ("melanoma", "basal_cell_carcinoma", "actinic_keratosis"),
    "histopathology": ("tumor",),
    "ultrasound": ("malignant",),
}
BENIGN = {
    "dermatoscopy": ("nevus", "benign_keratosis", "vascular_lesion"),
    "histopathology": ("normal", "benign", "lymphocytes", "stroma", "adipose"),
    "ultrasound": ("benign",),  # "normal" is no lesion at all, not a benign mass
}
#: The reference finding a single named finding is told apart from.
REFERENCE = {"dermatoscopy": "nevus", "fundus": "normal", "histopathology": "normal", "mri": "no_tumor",
             "ultrasound": "normal", "xray": "normal"}


def norm(text: str) -> str:
    """Compare names ignoring data quotes, case, underscores, hyphens and repeated spaces."""
    text = DATA_TAG.sub("", str(text)).lower().replace("_", " ").replace("-", " ")
    text = text.replace("tumour", "tumor")
    return re.sub(r"\s+", " ", text).strip()


@cache
def lexicon(modality: str) -> dict[str, str]:
    """Normalised finding name -> concept, for one modality (ambiguous names left out)."""
    seen: dict[str, set[str]] = {}

    def add(name: str, concept: str) -> None:
        seen.setdefault(norm(name), set()).add(concept)

    for concept in CONCEPTS[modality]:
        add(concept, concept)
    for concept, variants in get_modality(modality).LABEL_VARIANTS.items():
        for v in variants:
            add(v, concept)
    for card in cards_for(modality):
        for native, concept in card.concepts.items():
            if concept and not native.isdigit():
                add(native, concept)
    for name, concept in EXTRA[modality].items():
        seen[norm(name)] = {concept}
    return {name: next(iter(c)) for name, c in seen.items() if len(c) == 1}


def concept_of(modality: str, label: str, dataset: str | None = None, legend: dict[str, str] | None = None) -> str | None:
    """The concept a site's label names: via its legend, the dataset's published labels, then synonyms."""
    label = DATA_TAG.sub("", label)
    if legend:
        label = DATA_TAG.sub("", legend.get(label, label))
    if dataset:
        for card in cards_for(modality):
            if norm(card.name) == norm(dataset) and label in card.concepts:
                return card.concepts[label]
    return lexicon(modality).get(norm(label))


def mentioned(modality: str, text: str) -> list[str]:
    """Concepts a sentence names, in order of first mention."""
    t = f" {norm(text)} "
    hits: dict[str, int] = {}
    for name, concept in sorted(lexicon(modality).items(), key=lambda kv: -len(kv[0])):
        if len(name) < 3 and not name.isupper():
            continue
        m = re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", t)
        if m and (concept not in hits or m.start() < hits[concept]):
            hits[concept] = m.start()
    return sorted(hits, key=hits.get)


def body_part(modality: str) -> str:
    return PRIMARY_BODY_PART[modality]
