"""What a method uploads beyond weights is told to S3 and written into every run's report."""

from __future__ import annotations

import json
from pathlib import Path

from algorithms.catalog import as_records, entries
from evals.run_report import algorithm_shares, render_markdown
from fedagentbench.cli import main
from fedagentbench.training import declare
from fl_core import RunConfig
from fl_core.testing import make_noise_folders
from tools.federate import _report, make_selection_tools

PROMPTS = Path(__file__).resolve().parents[1] / "graphs" / "prompts"


def _sharing() -> str:
    return next(e.name for e in entries() if e.shares)


def test_the_catalog_s3_reads_states_each_methods_privacy_cost():
    records = {r["name"]: r for r in make_selection_tools(dict)[0].invoke({})}
    assert records == {r["name"]: r for r in as_records()}
    for e in entries():
        r = records[e.name]
        assert r["shares"] == list(e.shares)
        if e.shares:
            assert "PRIVACY COST" in r["privacy"] and all(s in r["privacy"] for s in e.shares)
        else:
            assert r["privacy"] == "clients upload model weights only"
    assert any(r["shares"] for r in records.values()), "no registered method shares anything; the test is idle"


def test_both_s3_prompts_explain_shares_as_a_privacy_cost():
    for guidance in ("fine-grained", "goal-oriented"):
        text = (PROMPTS / f"S3.{guidance}.txt").read_text()
        assert '"shares"' in text and "privacy cost" in text, guidance


def test_declare_takes_shares_from_the_catalog_and_keeps_the_checkpoint_fingerprint(tmp_path):
    dirs = make_noise_folders(tmp_path / "d", clients=2, per_class=2, classes=2)
    name = _sharing()
    wrong = RunConfig(data_dirs=tuple(dirs), algorithm=name, out_dir=str(tmp_path / "o"), shares=("nothing",))
    right = declare(wrong)
    assert right.shares == next(e.shares for e in entries() if e.name == name)
    assert right.fingerprint() == wrong.fingerprint()  # shares describes the run; it does not change it
    assert declare(wrong.replace(algorithm="fedavg")).shares == ()


def test_a_run_with_a_sharing_method_says_so_in_summary_json(tmp_path):
    dirs = make_noise_folders(tmp_path / "d", clients=2, per_class=3, classes=2)
    name = _sharing()
    shares = next(e.shares for e in entries() if e.name == name)
    for algo, expect in ((name, list(shares)), ("fedavg", [])):
        out = tmp_path / algo
        assert main(["train", "--data", *dirs, "--algorithm", algo, "--rounds", "1", "--image-size", "16",
                     "--out", str(out), "--quiet"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["shares"] == expect and summary["config"]["shares"] == expect
        assert ("beyond model weights" in summary["privacy_note"]) == bool(expect)
        report = _report("job1", ["site_01", "site_02"], summary)  # what training_report gives S4
        assert report["shares"] == expect and report["privacy_note"] == summary["privacy_note"]


def test_report_md_names_what_left_the_sites():
    name = _sharing()
    shares = algorithm_shares({"algorithm": name}, None)
    assert shares and algorithm_shares({"algorithm": name}, {"shares": ["features"]}) == ["features"]
    assert algorithm_shares(None, None) is None
    r = {"request": "q", "model_label": "scripted", "guidance": "fine-grained", "task_id": None, "roles": {},
         "algorithm": {"algorithm": name, "reason": "because"}, "shares": shares}
    md = render_markdown(r, curve=False)
    assert "Leaves each site beyond model weights" in md and all(s in md for s in shares)
    md = render_markdown({**r, "algorithm": {"algorithm": "fedavg", "reason": "x"}, "shares": []}, curve=False)
    assert "model weights only" in md
