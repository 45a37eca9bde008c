"""The dataset catalog: 201 real public datasets, validated on load.

These tests guard what the environment builder relies on: the counts per modality, unique names,
that every card fitting a modality's tasks can supply at least two concepts, that every concept is
offered by several datasets, and that a malformed card fails loudly with its name in the message.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from envs.cards import CATALOG_DIR, DatasetCard, cards_for, catalog, load_cards
from envs.concepts import CONCEPTS, MODALITIES

EXPECTED_COUNTS = {
    "dermatoscopy": 30,
    "fundus": 40,
    "histopathology": 35,
    "mri": 32,
    "ultrasound": 24,
    "xray": 40,
}

TASK_TYPES = ("classification", "grading")


def _mapped(card: DatasetCard) -> set[str]:
    return {c for c in card.concepts.values() if c is not None}


def _task_cards(modality: str) -> list[DatasetCard]:
    """Classification/grading cards of the modality's primary body part: what tasks draw on."""
    return [c for c in cards_for(modality) if c.fits_primary_body_part and c.task_type in TASK_TYPES]


def test_every_modality_file_exists_and_loads() -> None:
    for modality in MODALITIES:
        path = CATALOG_DIR / f"{modality}.yaml"
        assert path.exists(), f"missing catalog file {path}"
        cards = load_cards(path)
        assert {c.modality for c in cards} == {modality}, f"{path.name} holds cards of another modality"


def test_counts_per_modality_and_total() -> None:
    counts = Counter(c.modality for c in catalog())
    assert dict(counts) == EXPECTED_COUNTS
    assert len(catalog()) == 201


def test_names_are_unique_ignoring_case() -> None:
    names = Counter(c.name.strip().lower() for c in catalog())
    assert [n for n, k in names.items() if k > 1] == []


@pytest.mark.parametrize("modality", MODALITIES)
def test_task_cards_offer_two_concepts_or_none(modality: str) -> None:
    """A fitting card gives a task at least two classes; a card with none is an off-vocabulary distractor.

    Exactly one concept would make a dataset look usable for a task while it can only ever supply one
    class, so the catalog forbids it.
    """
    for card in _task_cards(modality):
        assert len(_mapped(card)) != 1, f"{card.name}: maps only {_mapped(card)}; map >= 2 or none"


@pytest.mark.parametrize("modality", MODALITIES)
def test_at_least_eight_usable_task_cards(modality: str) -> None:
    usable = [c for c in _task_cards(modality) if len(_mapped(c)) >= 2]
    assert len(usable) >= 8, f"{modality}: only {len(usable)} task cards map >= 2 concepts"


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_concept_reached_by_two_task_cards(modality: str) -> None:
    reach = Counter(concept for card in _task_cards(modality) for concept in _mapped(card))
    thin = {c: reach[c] for c in CONCEPTS[modality] if reach[c] < 2}
    assert thin == {}, f"{modality}: concepts offered by fewer than 2 task cards: {thin}"


def test_other_body_parts_map_nothing() -> None:
    """A card of another body part must never be mistaken for one that fits the modality's tasks."""
    for card in catalog():
        if not card.fits_primary_body_part:
            assert _mapped(card) == set(), f"{card.name} ({card.body_part}) maps {_mapped(card)}"


def test_each_modality_has_segmentation_or_detection_and_other_body_parts() -> None:
    for modality in MODALITIES:
        cards = cards_for(modality)
        assert any(c.task_type in ("segmentation", "detection") for c in cards), modality
        if modality not in ("dermatoscopy", "fundus"):  # these only ever show skin or retina
            assert any(not c.fits_primary_body_part for c in cards), modality


def test_numeric_labels_stay_strings() -> None:
    cards = catalog()
    assert any(label.isdigit() for card in cards for label in card.native_labels), "no card has numeric labels"
    for card in cards:  # segmentation cards carry no labels; every label a card has is text
        assert all(isinstance(label, str) for label in card.native_labels), card.name


def _good_card() -> dict:
    return {
        "name": "Tiny Test Set",
        "modality": "dermatoscopy",
        "body_part": "skin",
        "task_type": "classification",
        "native_labels": ["MEL", "NV"],
        "concepts": {"MEL": "melanoma", "NV": "nevus"},
        "num_images": 10,
        "file_format": "jpg",
        "layout": "class_folders",
        "license": "CC BY 4.0",
        "source": "https://example.org/tiny",
        "description": "A tiny set written by the test to check that validation accepts a good card.",
    }


def _write(tmp_path: Path, cards: list[dict]) -> Path:
    path = tmp_path / "cards.yaml"
    path.write_text(yaml.safe_dump(cards), encoding="utf-8")
    return path


def test_good_card_loads(tmp_path: Path) -> None:
    (card,) = load_cards(_write(tmp_path, [_good_card()]))
    assert card.concepts["MEL"] == "melanoma"


@pytest.mark.parametrize(
    ("change", "hint"),
    [
        ({"concepts": {"MEL": "melanomma", "NV": "nevus"}}, "unknown dermatoscopy concepts"),
        ({"concepts": {"MEL": "melanoma"}}, "concepts must map exactly the native labels"),
        ({"modality": "ct"}, "modality"),
        ({"native_labels": [0, 1], "concepts": {0: None, 1: None}}, "string"),
        ({"task_type": "classification", "native_labels": [], "concepts": {}}, "needs native_labels"),
        ({"extra_field": 1}, "extra"),
    ],
)
def test_malformed_card_is_rejected_naming_it(tmp_path: Path, change: dict, hint: str) -> None:
    bad = {**_good_card(), **change, "name": "Broken Card"}
    path = _write(tmp_path, [_good_card(), bad])
    with pytest.raises(ValueError) as err:
        load_cards(path)
    message = str(err.value)
    assert "Broken Card" in message and "card #1" in message
    assert hint.lower() in message.lower()
