"""End to end with the scripted policy, the trained model itself: on a modality where FL measurably
learns (histopathology at scale 1) the model beats chance, and S4 can train on Flower deployment
processes. The four modalities whose federations stay near chance after five rounds (see
fl_core/presets.py and tests/test_fl_on_envs.py) are held to the role checks only
(test_graph_e2e.py).
"""

from __future__ import annotations

import pytest

from envs.build import build
from fl_core.presets import SMALL_SITES
from tests.graph_helpers import private_env, run_and_score

pytestmark = pytest.mark.slow
#: Chance is 1/n classes; "clearly above" means at least this much more balanced accuracy.
MARGIN = 0.15


def test_the_federated_model_beats_chance_clearly(tmp_path):
    built = build("histopathology", tmp_path / "built", seed=0, scale=1.0)
    env = private_env(built, tmp_path)
    train = {**SMALL_SITES, "rounds": 5, "baselines": False}
    state, scores = run_and_score(built, env, tmp_path / "run", "histo-tumor-detection", train)
    assert scores["S4"].passed, scores["S4"].explanation
    bal = state["training"]["metrics"]["balanced_accuracy"]
    assert bal >= 0.5 + MARGIN, f"balanced accuracy {bal:.3f} is not clearly above chance (0.5)"


def test_s4_can_train_on_flower_processes(built_envs, tmp_path):
    """The scripted run once more, with S4 asking launch_training for the Flower deployment engine:
    a SuperLink and one SuperNode process per approved site on 127.0.0.1."""
    import json

    built = built_envs("dermatoscopy")
    env = private_env(built, tmp_path)
    _state, scores = run_and_score(built, env, tmp_path / "run", "derm-binary-cancer",
                                   {"rounds": 1, "local_epochs": 1, "baselines": False, "engine": "flower-deployment"})
    failed = {r: s.explanation for r, s in scores.items() if not s.passed}
    assert not failed, failed
    summaries = list((tmp_path / "run" / "training").glob("*/summary.json"))
    assert len(summaries) == 1
    summary = json.loads(summaries[0].read_text())
    assert summary["engine"] == "flower-deployment" and summary["rounds_completed"] == 1
    assert len(list(summaries[0].parent.glob("flower_logs/supernode-*.log"))) == len(summary["client_names"])
