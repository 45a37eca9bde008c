"""The scripted S3 rule reads the statistics S3's tools return: a feature-skew goal gets FedBN, unless
some sites lack whole classes, where a per-site head (FedRep) answers both skews; a generic task
with high label skew gets FedProx, else FedAvg. Measured on the full suite at scale 1.0
(benchmarks/results/reference_full.md): derm-four-class-per-site, two of five sites missing a class,
FedBN 0.195 against FedRep 0.400 (best APFL 0.477, margin 0.233)."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, ToolMessage

from algorithms.catalog import as_records
from graphs.scripted.model import Transcript
from graphs.scripted.roles import s3
from tools.federate import federation_summary


def _choice(goals: list[str], class_counts: dict[str, dict[str, int]]) -> str:
    stats = federation_summary({site: {"class_counts": c, "n_images": sum(c.values()), "intensity_mean": 0.5,
                                       "intensity_std": 0.1} for site, c in class_counts.items()})
    messages = [HumanMessage(json.dumps({"task_spec": {"implicit_goals": goals}})),
                ToolMessage(json.dumps(as_records()), tool_call_id="1", name="read_algorithm_catalog"),
                ToolMessage(json.dumps(stats), tool_call_id="2", name="federation_statistics")]
    name, args = s3(Transcript(messages, []))
    assert name == "submit_AlgorithmChoice" and args["reason"]
    return args["algorithm"]


EVERY_CLASS = {"a": {"x": 40, "y": 35}, "b": {"x": 30, "y": 45}}
ONE_LACKS_A_CLASS = {"a": {"x": 40, "y": 35}, "b": {"x": 30, "y": 0}, "c": {"x": 20, "y": 25}}
SKEWED = {"a": {"x": 80, "y": 1}, "b": {"x": 1, "y": 80}}


@pytest.mark.parametrize(("goals", "counts", "want"), [
    (["feature_skew"], EVERY_CLASS, "fedbn"),
    (["feature_skew"], ONE_LACKS_A_CLASS, "fedrep"),
    ([], EVERY_CLASS, "fedavg"),
    ([], SKEWED, "fedprox"),
    ([], ONE_LACKS_A_CLASS, "fedavg"),  # no implied goal: a missing class alone is not a reason
])
def test_the_rule_follows_the_statistics(goals, counts, want):
    assert _choice(goals, counts) == want
