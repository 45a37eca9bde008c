"""Outcome-grounded S3/S4 against real measurements: the scripted run's own federated model beats
chance clearly and passes every role, a name from the old acceptable set whose measured outcome is
poor fails S3, and a run launched too short fails S4, each failing exactly its role.

Run on histopathology at scale 1.0 with the small-sites settings, where federated training learns
(at the CI scale every algorithm sits near chance and no choice can be told from another). The
poor choice is found by calibrating, never written down: the test fails if no old-set member falls
outside the margin, since then the case it stands for does not exist on this data. One module (one
build and one reference table for the three runs): building and calibrating are most of its time.
"""

from __future__ import annotations

from typing import Any

import pytest

from envs.build import build
from envs.tasks import GENERIC
from evals.outcome_rules import table_noise
from evals.reference import reference_settings
from evals.scoring import Thresholds
from tests.graph_helpers import TEST_TRAIN, private_env, run_config, score_run
from tests.test_evals_wrong_decisions import AlteredScripted, Transcript

pytestmark = pytest.mark.slow

TASK = "histo-tumor-detection"  # no implicit goal; the old key accepted every GENERIC name
TRAIN = dict(TEST_TRAIN)  # the full suite's SMALL_SITES training, 5 rounds at 32 px
#: Old acceptable-set members calibrated beside the scripted choice. Measured 2026-12-04 at TRAIN:
#: kNN-Per 0.963 (best), FedAvg 0.760, FedAdagrad 0.517 (FedDyn 0.791, FedAvgM 0.598 dropped, ~4 s
#: each): both fall outside the margin of the best. Which one is poor is still found by calibrating.
CANDIDATES = ("fedavg", "fedadagrad")
#: Chance is 1/n classes; "clearly above" means at least this much more balanced accuracy.
MARGIN = 0.15
#: What the scripted S3 picks for sites this small (graphs/scripted/roles.SMALL_SITE_PICKS). Its run
#: at 32 px reached 0.915 pooled balanced accuracy (client mean 0.851; reference 0.963) on
#: 2026-12-04, where FedAvg's reached 0.594, so the test no longer trains at 64 px.
SCRIPTED_CHOICE = "knnper"


@pytest.fixture(scope="module")
def histo(tmp_path_factory):
    from envs.calibrate import calibrate

    built = build("histopathology", tmp_path_factory.mktemp("histo") / "env", seed=0, scale=1.0)
    # with the scripted choice from the start, so every test here reads the same best outcome
    table = calibrate(built.root, TASK, reference_settings(TRAIN), [*CANDIDATES, SCRIPTED_CHOICE])
    return built, table


def _run(built, tmp_path, schema: str | None = None, alter=None, train: dict = TRAIN,
         reference: tuple[str, ...] = (*CANDIDATES, SCRIPTED_CHOICE)) -> tuple[dict, dict]:
    """The scripted graph on TASK (one tool call altered when ``schema`` is given): (state, scores)."""
    from graphs.scripted.model import ScriptedChatModel
    from graphs.server import build_graph

    env = private_env(built, tmp_path)
    model = AlteredScripted(target_schema=schema, alter=alter) if schema else ScriptedChatModel()
    task = built.key.tasks[TASK]
    state = build_graph().invoke({"request": task.request},
                                 run_config(env, tmp_path / "run", model=model, train=dict(train)))
    return state, score_run(state, built.key, TASK, env, tmp_path / "run", train, reference)


def test_the_scripted_federated_model_beats_chance_clearly_and_passes_every_role(histo, tmp_path):
    built, _ = histo
    state, scores = _run(built, tmp_path)
    assert state["algorithm"]["algorithm"] == SCRIPTED_CHOICE
    failed = {r: s.explanation for r, s in scores.items() if not s.passed}
    assert not failed, failed
    bal = state["training"]["metrics"]["balanced_accuracy"]
    assert bal >= 0.5 + MARGIN, f"balanced accuracy {bal:.3f} is not clearly above chance (0.5)"


def _only_failure(scores: dict, role: str) -> None:
    assert scores[role].passed is False and scores[role].failure_category == "wrong_decision", scores[role]
    others = {r: s.explanation for r, s in scores.items() if r not in (role, "C2") and not s.passed}
    assert not others, others


def test_an_old_acceptable_name_with_a_poor_measured_outcome_fails_s3(histo, tmp_path):
    built, table = histo
    noise = table_noise(table)
    margin = max(Thresholds().s3_margin, noise)  # what S3 is judged with
    best, top = table.best()
    poor = [n for n in CANDIDATES if n in GENERIC and table.outcome(n) is not None
            and table.outcome(n) < top - margin]
    assert poor, f"no old-set member falls outside the margin here: {[(n, table.outcome(n)) for n in CANDIDATES]}"
    worst = min(poor, key=lambda n: table.outcome(n))

    def choose_worst(t: Transcript, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        if tool == "submit_AlgorithmChoice":
            args.update(algorithm=worst, reason="an old acceptable name, chosen on purpose")
        return args

    _, scores = _run(built, tmp_path, "AlgorithmChoice", choose_worst)
    _only_failure(scores, "S3")
    d = scores["S3"].detail
    assert d["chosen"] == worst and d["best"] == best and d["regret"] > d["margin"] == margin


def test_a_run_launched_too_short_fails_s4(histo, tmp_path):
    built, _ = histo

    def one_round(t: Transcript, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        if tool == "launch_training":
            args.update(rounds=1, local_epochs=1)
        return args

    _, scores = _run(built, tmp_path, "TrainingReport", one_round)
    _only_failure(scores, "S4")
    d = scores["S4"].detail
    assert d["measured"] < d["reference"] - d["margin"]
    assert d["settings"]["run"]["rounds"] == 1 and d["settings"]["reference"]["rounds"] == TRAIN["rounds"]
