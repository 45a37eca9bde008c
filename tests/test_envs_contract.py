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


def test_acceptable_algorithm_sets_are_the_catalog_families():
    """A family is every selectable method whose category or also_fits names it (algorithms/README.md)."""
    from algorithms.catalog import as_records
    from envs.tasks import GENERIC, LABEL_SKEW, PERSONALISED

    records = {r["name"]: r for r in as_records()}

    def fitting(*cats: str) -> set[str]:
        return {n for n, r in records.items() if r["selectable"]
                and (r["category"] in cats or set(r["also_fits"]) & set(cats))}

    assert set(GENERIC) == fitting("generic")
    assert set(LABEL_SKEW) == fitting("label_skew")
    assert set(PERSONALISED) == fitting("feature_skew", "personalised")
    for name, r in records.items():  # every selectable method is acceptable for what it was designed for
        family = {"generic": GENERIC, "label_skew": LABEL_SKEW, "feature_skew": PERSONALISED,
                  "personalised": PERSONALISED}.get(r["category"])
        if family is not None:
            assert (name in family) == r["selectable"], name
    assert "local" not in set(GENERIC + LABEL_SKEW + PERSONALISED), "local-only solves no federated task"
    assert {"fedavg", "fedprox"} <= set(GENERIC) and "fedbn" in PERSONALISED and "fedavg" not in LABEL_SKEW
    # a personalised method joins the generic family only when its entry says it also gives a sound global model
    assert not {n for n in GENERIC if records[n]["category"] in ("feature_skew", "personalised")
                and "generic" not in records[n]["also_fits"]}
