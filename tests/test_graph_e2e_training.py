"""End to end with the scripted policy: S4 can train on Flower deployment processes. That the trained
model beats chance where FL measurably learns (histopathology at scale 1) is tested beside the
outcome-grounded S3/S4 cases, on the same build and reference table (test_evals_outcome_decisions.py);
the modalities whose federations stay near chance after five rounds are held to the role checks only
(test_graph_e2e.py).
"""

from __future__ import annotations

import pytest

from tests.graph_helpers import private_env, run_and_score

pytestmark = pytest.mark.slow


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
