"""Suite files validate, list the right tasks, and carry the hard kinds from the templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from envs.concepts import MODALITIES
from envs.modalities import get_modality
from evals.suite import hard_kinds, list_suites, load_suite
from fedagentbench.cli import main
from graphs.roles import GUIDANCE


def test_shipped_suites_validate():
    assert {"full", "smoke"} <= set(list_suites())
    for name in list_suites():
        assert load_suite(name).entries()


def test_full_suite_is_every_template_in_both_styles():
    entries = load_suite("full").entries()
    want = {(t.task_id, g) for m in MODALITIES for t in get_modality(m).TASKS for g in GUIDANCE}
    assert {(e.task_id, e.guidance) for e in entries} == want
    assert len(entries) == len(want) == 36


def test_smoke_suite_is_one_task_per_modality_and_style_at_small_scale():
    suite = load_suite("smoke")
    entries = suite.entries()
    assert len(entries) == 12
    assert sorted((e.modality, e.guidance) for e in entries) == sorted((m, g) for m in MODALITIES for g in GUIDANCE)
    assert all(e.scale < load_suite("full").scale for e in entries)


def test_hard_kinds_come_from_the_templates():
    full = load_suite("full").entries("fine-grained")
    tags = {e.task_id: set(e.tags) for e in full}
    for m in MODALITIES:
        for t in get_modality(m).TASKS:
            assert ("implicit-goal" in tags[t.task_id]) == (t.implicit_goal != "none")
            assert ("implicit-labels" in tags[t.task_id]) == t.implicit_labels
            assert set(hard_kinds(t)) == tags[t.task_id]
    assert sum("implicit-goal" in t for t in tags.values()) >= 5
    assert sum("implicit-labels" in t for t in tags.values()) >= 5
    assert all("interdependent" in t for t in tags.values() if t)
    smoke = {k for e in load_suite("smoke").entries() for k in e.tags}
    assert {"implicit-goal", "implicit-labels", "interdependent"} <= smoke


def test_guidance_filter_scale_override_and_subset():
    suite = load_suite("full")
    assert len(suite.entries("goal-oriented")) == 18
    assert {e.scale for e in suite.entries(scale=0.2)} == {0.2}
    assert {e.task_id for e in suite.entries(only={"xray-pneumonia"})} == {"xray-pneumonia"}
    with pytest.raises(ValueError, match="no task"):
        suite.entries(only={"nope"})
    with pytest.raises(ValueError, match="guidance"):
        suite.entries("vague")


def test_thresholds_are_read_from_the_suite(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("tasks: [{task: xray-pneumonia, modality: xray}]\n"
                    "thresholds: {c1_min_f1: 0.5, c2_min_recall: {duplicate: 0.6}}\n")
    th = load_suite(path).judged_by
    assert th.c1_min_f1 == 0.5 and th.c2_min_recall["duplicate"] == 0.6 and th.c2_min_recall["corrupt"] == 1.0


def test_a_suites_client_optimizer_is_part_of_its_reference_settings(tmp_path):
    from evals.reference import reference_settings

    path = tmp_path / "s.yaml"
    path.write_text("tasks: [{task: xray-pneumonia, modality: xray}]\n"
                    "train: {rounds: 5, optimizer: adam, lr: 0.001, batch_size: 16}\n")
    adam = reference_settings(load_suite(path).train.model_dump())
    assert (adam.optimizer, adam.lr, adam.batch_size) == ("adam", 0.001, 16)
    path.write_text("tasks: [{task: xray-pneumonia, modality: xray}]\ntrain: {rounds: 5}\n")
    sgd = reference_settings(load_suite(path).train.model_dump())
    assert (sgd.optimizer, sgd.lr, sgd.batch_size) == ("sgd", 0.05, 32)  # the training tools' defaults
    assert adam.digest() != sgd.digest()


def test_the_shipped_suites_state_their_s3_and_s4_margins():
    for name in ("smoke", "full"):
        raw = load_suite(Path(__file__).parents[1] / "evals" / "suites" / f"{name}.yaml")
        assert {"s3_margin", "s4_margin"} <= set(raw.thresholds)
        assert 0 < raw.judged_by.s3_margin < 1 and 0 < raw.judged_by.s4_margin < 1


@pytest.mark.parametrize("text, match", [
    ("tasks: [{task: no-such-task, modality: xray}]", "xray-pneumonia"),
    ("tasks: [{task: xray-pneumonia, modality: xray}]\nthresholds: {c9_magic: 1}", "c1_min_f1"),
    ("tasks: [{task: xray-pneumonia, modality: xray}]\nthresholds: {c2_min_recall: {blur: 1}}", "duplicate"),
    ("tasks: [{task: xray-pneumonia, modality: xray, guidance: [chatty]}]", "fine-grained"),
    ("tasks: [{task: xray-pneumonia, modality: xray}]\nthresholds: {s3_margin: 5}", "s3_margin"),
    ("tasks: [{task: xray-pneumonia, modality: xray}]\nthresholds: {s4_margin: lots}", "s4_margin"),
    ("tasks: []", "at least 1"),
    ("tasks: [{task: xray-pneumonia, modality: xray}]\ntrain: {optimizer: rmsprop}", "adam"),
    ("tasks: [{task: xray-pneumonia, modality: xray}]\ntrain: {lr: 0}", "lr"),
])
def test_bad_suites_fail_with_a_message_that_says_what_is_valid(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_suite(path)


def test_unknown_suite_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="smoke"):
        load_suite("nightly")


def test_eval_list_shows_the_counts(capsys):
    assert main(["eval", "list", "--suite", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "12 tasks" in out and "implicit-goal" in out
    assert main(["eval", "list", "--suite", "full", "--guidance", "fine-grained"]) == 0
    assert "18 tasks" in capsys.readouterr().out
