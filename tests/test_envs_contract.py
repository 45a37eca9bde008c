"""Every modality environment meets the same contract; tasks are well-formed; registration works."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from envs.concepts import CONCEPTS, MODALITIES
from envs.modalities import all_modalities
from envs.modalities.base import ModalityEnv
from envs.readonly import tree_hash
from envs.register import register_site
from envs.tasks import TaskTemplate


@pytest.mark.parametrize("modality", MODALITIES)
def test_modality_module_meets_the_protocol(modality):
    env = all_modalities()[modality]
    assert isinstance(env, ModalityEnv)
    assert env.MODALITY == modality
    assert len(env.TASKS) >= 3 and all(isinstance(t, TaskTemplate) for t in env.TASKS)
    assert any(t.implicit_goal != "none" for t in env.TASKS), "one task must imply its algorithm family"
    assert set(env.LABEL_VARIANTS) == set(CONCEPTS[modality])
    lo, hi = env.SITE_RANGE
    assert 4 <= lo <= hi <= 10
    assert modality not in env.NEIGHBOUR_MODALITIES


def test_task_ids_are_unique_across_modalities():
    ids = [t.task_id for env in all_modalities().values() for t in env.TASKS]
    assert len(ids) == len(set(ids))


def test_task_template_rejects_a_concept_in_two_classes():
    with pytest.raises(ValueError, match="two target classes"):
        TaskTemplate(task_id="bad", modality="mri", request="a request that is long enough",
                     target_classes={"a": ("glioma",), "b": ("glioma",)}, acceptable_algorithms=("fedavg",))


def test_register_an_existing_folder_as_a_site(tmp_path):
    src = tmp_path / "hospital" / "chest"
    for cls in ("normal", "pneumonia"):
        (src / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (32, 32), 40 * i).save(src / cls / f"{i}.png")
    before = tree_hash(src.parent)
    site = register_site(tmp_path / "env", src.parent, "st_mary", modality="xray", description="our PACS export")
    assert sorted(p.name for p in (site / "raw" / "chest").iterdir()) == ["normal", "pneumonia"]
    assert json.loads((tmp_path / "env" / "server" / "sites.json").read_text())["sites"] == ["st_mary"]
    assert "our PACS export" in (site / "data_cards.yaml").read_text()
    assert tree_hash(src.parent) == before
    with pytest.raises(FileExistsError):
        register_site(tmp_path / "env", src.parent, "st_mary", modality="xray")


def test_acceptable_algorithm_sets_follow_the_catalog_categories():
    from algorithms.catalog import as_records, entries
    from envs.tasks import GENERIC, LABEL_SKEW, PERSONALISED

    category = {r["name"]: r["category"] for r in as_records()}
    fits = {e.name: e for e in entries()}  # a family holds a method by its category or its also_fits
    assert set(GENERIC + LABEL_SKEW + PERSONALISED) <= set(category), "a task names an unregistered algorithm"
    assert {n for n, c in category.items() if c == "label_skew"} <= set(LABEL_SKEW)
    assert set(LABEL_SKEW) == {n for n, e in fits.items() if e.fits("label_skew")}
    assert set(PERSONALISED) == {n for n, e in fits.items() if e.fits("feature_skew") or e.fits("personalised")}
    assert "local" not in PERSONALISED
    assert not {category[n] for n in GENERIC} & {"feature_skew", "personalised"}
