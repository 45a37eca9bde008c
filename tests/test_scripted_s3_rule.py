"""The scripted S3 rule reads the statistics S3's tools return.

Sites of a few hundred images or fewer (median below ``SMALL_SITE_MEDIAN``) get kNN-Per whatever the
goal: each site is judged on its own test split, and on the 18 tasks of the full suite at scale 1.0
(sites of 24-476 images, 5 rounds of 3 local Adam epochs) a global model stayed near the class prior
on many tasks where kNN-Per's per-site memory did not (benchmarks/results/reference_full.md). Larger
sites get the goal rules: a feature-skew goal FedBN, or FedRep when some sites lack whole classes; a
generic task with high label skew FedProx, else FedAvg.
"""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage, ToolMessage

from algorithms.catalog import as_records
from graphs.scripted.model import Transcript
from graphs.scripted.roles import SMALL_SITE_MEDIAN, s3
from tools.federate import federation_summary


def _choice(goals: list[str], class_counts: dict[str, dict[str, int]], scale: int = 1,
            catalog: list[dict] | None = None) -> str:
    counts = {site: {k: n * scale for k, n in c.items()} for site, c in class_counts.items()}
    stats = federation_summary({site: {"class_counts": c, "n_images": sum(c.values()), "intensity_mean": 0.5,
                                       "intensity_std": 0.1} for site, c in counts.items()})
    messages = [HumanMessage(json.dumps({"task_spec": {"implicit_goals": goals}})),
                ToolMessage(json.dumps(catalog or as_records()), tool_call_id="1", name="read_algorithm_catalog"),
                ToolMessage(json.dumps(stats), tool_call_id="2", name="federation_statistics")]
    name, args = s3(Transcript(messages, []))
    assert name == "submit_AlgorithmChoice" and args["reason"]
    return args["algorithm"]


EVERY_CLASS = {"a": {"x": 40, "y": 35}, "b": {"x": 30, "y": 45}}
ONE_LACKS_A_CLASS = {"a": {"x": 40, "y": 35}, "b": {"x": 30, "y": 0}, "c": {"x": 20, "y": 25}}
SKEWED = {"a": {"x": 80, "y": 1}, "b": {"x": 1, "y": 80}}
#: Multiplies the counts above to sites of thousands of images.
LARGE = 40


@pytest.mark.parametrize("goals", [[], ["feature_skew"], ["label_skew"]])
@pytest.mark.parametrize("counts", [EVERY_CLASS, ONE_LACKS_A_CLASS, SKEWED])
def test_small_sites_get_a_per_site_method_whatever_the_goal(goals, counts):
    assert _choice(goals, counts) == "knnper"


def test_small_sites_fall_back_to_the_next_weights_only_pick_and_the_boundary_is_the_median():
    without = [r for r in as_records() if r["name"] != "knnper"]
    assert _choice([], EVERY_CLASS, catalog=without) == "fedala"
    at_the_line = {"a": {"x": SMALL_SITE_MEDIAN, "y": 0}, "b": {"x": SMALL_SITE_MEDIAN, "y": 0},
                   "c": {"x": 10, "y": 10}}  # median exactly SMALL_SITE_MEDIAN: not small
    assert _choice([], at_the_line) != "knnper"


@pytest.mark.parametrize(("goals", "counts", "want"), [
    (["feature_skew"], EVERY_CLASS, "fedbn"),
    (["feature_skew"], ONE_LACKS_A_CLASS, "fedrep"),
    ([], EVERY_CLASS, "fedavg"),
    ([], SKEWED, "fedprox"),
    ([], ONE_LACKS_A_CLASS, "fedavg"),  # no implied goal: a missing class alone is not a reason
])
def test_large_sites_follow_the_goal_and_skew_rules(goals, counts, want):
    assert _choice(goals, counts, scale=LARGE) == want
