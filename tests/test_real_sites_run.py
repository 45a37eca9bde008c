"""The scripted graph over registered real sites: runs end to end with no answer key (reported, not
scored), refuses a one-site "federation", and scores a mixed environment without crashing."""

from __future__ import annotations

import json
import logging

import pytest

from envs.readonly import tree_hash
from fedagentbench.cli import main
from fedagentbench.cli.exit_codes import ROLE_FAILED
from tests.replicas import BUILDERS

DERM = "I want to train a binary skin-cancer detector on dermatology images"


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


def _register(tmp_path, env, names):
    hashes = {}
    for name in names:
        rep = BUILDERS[name](tmp_path / "downloads")
        hashes[name] = (rep.source, tree_hash(rep.source))
        assert main(["envs", "register", str(env), str(rep.source), "--site", name, "--modality", rep.modality]) == 0
    return hashes


@pytest.mark.slow
def test_scripted_graph_runs_over_registered_real_sites(tmp_path):
    env, run = tmp_path / "env", tmp_path / "run"
    hashes = _register(tmp_path, env, ["isic2018", "isic2019", "ham10000"])
    assert main(["run", DERM, "--env-dir", str(env), "--out", str(run), "--rounds", "1", "--local-epochs", "1"]) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["scoring"].startswith("not scored: this environment has no answer key")
    assert "not scored" in (run / "report.md").read_text()
    assert {r: s["success"] for r, s in report["roles"].items()} == dict.fromkeys(
        ("S1", "C1", "S2", "C2", "C3", "S3", "S4"), True)
    assert all(s["scored"] is False for s in report["roles"].values())
    assert sorted(report["training"]["sites"]) == ["ham10000", "isic2018", "isic2019"]
    assert report["training"]["status"] == "finished"
    for site, p in report["preprocess"].items():
        assert p["organized_images"] >= 15, (site, p)
    assert all(tree_hash(src) == h for src, h in hashes.values())


def test_one_site_is_not_a_federation(tmp_path):
    env, run = tmp_path / "env", tmp_path / "run"
    _register(tmp_path, env, ["ham10000", "kermany"])  # only one site holds skin images
    # no training can finish with one site: the documented exit code for that is ROLE_FAILED
    assert main(["run", DERM, "--env-dir", str(env), "--out", str(run)]) == ROLE_FAILED
    report = json.loads((run / "report.json").read_text())
    ham = report["approvals"]["ham10000"]
    assert ham["approved"] is False and "a federation of one site is not a federation" in ham["reason"]
    assert not report["training"] and "C2" not in report["roles"]


@pytest.mark.slow
def test_real_sites_in_a_built_environment_are_reported_unscored(built_envs, tmp_path):
    from evals.run_report import write_run_report
    from graphs.server import build_graph
    from tests.graph_helpers import private_env, run_config

    built = built_envs("dermatoscopy")
    env = private_env(built, tmp_path)
    _register(tmp_path, env, ["ham10000"])
    task = built.key.tasks["derm-binary-cancer"]
    state = build_graph().invoke({"request": task.request}, run_config(env, tmp_path / "run"))
    assert state["approvals"]["ham10000"]["approved"]
    report = write_run_report(state, out=tmp_path / "run", env_dir=env, task_id=task.task_id, model="scripted",
                              guidance="fine-grained", key=built.key)
    assert report["unscored_sites"] == ["ham10000"] and "reported, not scored: ham10000" in report["scoring"]
    assert report["roles"]["C2"]["detail"]["unscored_sites"] == ["ham10000"]
    assert report["roles"]["S2"]["passed"], report["roles"]["S2"]["explanation"]
