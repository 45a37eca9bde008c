"""The S1 and C3 graders against answer keys written here by hand, not derived from any player's rules.

The scripted policy's lexicon and the grader used to share one synonym table, so a lexicon bug made
both agree. The grader now reads findings with the key's own vocabulary (envs.concepts); these keys
and specs are written independently of both, as a clinician (or an LLM) would phrase them.
"""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

from envs.concepts import CONCEPTS, FINDING_NAMES, concept_named
from evals.scorers import score_c3, score_s1
from evals.scoring import Trial

DERM_KEY = {"benign": ["nevus", "benign_keratosis", "vascular_lesion"],
            "malignant": ["melanoma", "basal_cell_carcinoma", "actinic_keratosis"]}


def trial(modality, key_classes, spec_classes, *, harmonization=None, label_maps=None):
    task = SimpleNamespace(modality=modality, target_classes=key_classes, implicit_goal="none",
                           label_maps=label_maps or {})
    outcomes = [{"role": "S1", "site_id": None, "success": True, "failure": None, "reason": "submitted"}] + [
        {"role": "C3", "site_id": s, "success": True, "failure": None, "reason": "submitted"} for s in harmonization or {}]
    state = {"task_spec": {"modality": modality, "target_classes": [{"name": n, "includes": inc}
                                                                    for n, inc in spec_classes.items()],
                           "implicit_goals": []},
             "outcomes": outcomes, "harmonization": harmonization or {}}
    sites = dict.fromkeys(harmonization or {})  # the key knows every site graded here
    return Trial(state=state, key=SimpleNamespace(tasks={"t": task}, sites=sites), task_id="t", env_dir=None,
                 run_dir=None)


CASES = [
    ("dermatoscopy", DERM_KEY, {"benign": ["melanocytic nevi", "seborrheic keratosis", "angioma"],
                                "cancer": ["Malignant melanoma", "BCC", "actinic keratoses"]}, True),
    ("dermatoscopy", DERM_KEY, {"benign": ["nevus", "benign keratosis", "melanoma"],
                                "malignant": ["vascular lesion", "basal cell carcinoma", "actinic keratosis"]}, False),
    ("dermatoscopy", DERM_KEY, {"benign": ["nevus", "benign keratosis", "vascular lesion"],
                                "malignant": ["melanoma", "basal cell carcinoma"]}, False),  # one finding lost
    ("xray", {"normal": ["normal"], "pneumonia": ["pneumonia"]}, {"healthy": ["No Finding"],
                                                                   "pneumonia": ["Pneumonia"]}, True),
    ("xray", {"normal": ["normal"], "pneumonia": ["pneumonia"]}, {"normal": ["normal"],
                                                                   "sick": ["covid-19"]}, False),
    ("mri", {"tumor": ["glioma", "meningioma", "pituitary"], "no_tumor": ["no_tumor"]},
     {"tumour": ["Glioma", "meningioma", "pituitary adenoma"], "none": ["no tumour"]}, True),
    ("fundus", {"non_referable": ["normal", "dr_mild"], "referable": ["dr_moderate", "dr_severe", "dr_proliferative"]},
     {"non_referable": ["No DR", "mild NPDR"], "referable": ["moderate NPDR", "severe NPDR", "PDR"]}, True),
    ("ultrasound", {"benign": ["benign"], "malignant": ["malignant"]},
     {"benign": ["benign mass"], "malignant": ["a blue widget"]}, False),  # a finding the key does not know
]


@pytest.mark.parametrize("modality, key, spec, passes", CASES)
def test_s1_is_graded_against_a_hand_written_key(modality, key, spec, passes):
    score = score_s1(trial(modality, key, spec))
    assert score.passed is passes, score.explanation


def test_c3_label_maps_are_graded_through_the_spec_class_names():
    key = {"normal": ["normal"], "pneumonia": ["pneumonia"]}
    spec = {"healthy": ["no finding"], "infection": ["bacterial pneumonia"]}
    maps = {"site_01": {"chest": {"NORMAL": "normal", "PNEUMONIA": "pneumonia", "OTHER": None}}}
    right = {"site_01": {"label_map": {"NORMAL": "healthy", "PNEUMONIA": "infection", "OTHER": None}}}
    wrong = {"site_01": {"label_map": {"NORMAL": "infection", "PNEUMONIA": "healthy", "OTHER": None}}}
    assert score_c3(trial("xray", key, spec, harmonization=right, label_maps=maps)).passed is True
    assert score_c3(trial("xray", key, spec, harmonization=wrong, label_maps=maps)).passed is False


def test_a_broken_player_lexicon_does_not_move_the_grader(monkeypatch):
    from graphs.scripted import lexicon

    monkeypatch.setattr(lexicon, "lexicon", lambda modality: {"pneumonia": "normal", "normal": "pneumonia"})
    monkeypatch.setattr(lexicon, "cards_for", lambda modality: [])
    assert lexicon.concept_of("xray", "pneumonia") == "normal"  # the player is now wrong ...
    score = score_s1(trial("xray", {"normal": ["normal"], "pneumonia": ["pneumonia"]},
                           {"normal": ["normal"], "pneumonia": ["pneumonia"]}))
    assert score.passed is True, score.explanation  # ... and the grader is not


def test_the_grader_does_not_import_the_scripted_player():
    code = "import sys, evals.scorers; print(sorted(m for m in sys.modules if m.startswith('graphs.scripted')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"evals.scorers imports {out.stdout.strip()}"


@pytest.mark.parametrize("modality", sorted(CONCEPTS))
def test_every_concept_is_named_by_itself_and_every_name_by_one_concept(modality):
    assert CONCEPTS[modality], f"no concepts for {modality}"
    for concept in CONCEPTS[modality]:
        assert concept_named(modality, concept) == concept
        assert concept_named(modality, concept.replace("_", " ").upper()) == concept
    names = [(c, n) for c, ns in FINDING_NAMES[modality].items() for n in ns]
    assert names, f"no clinical names for {modality}"
    for concept, name in names:
        assert concept_named(modality, name) == concept, f"{name!r} should name {concept}"
