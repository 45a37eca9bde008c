"""S3/S4 server tools: catalog, federation statistics and background training jobs (tiny, offline)."""

from __future__ import annotations

import json
import time

import pytest

from tools.federate import federation_summary, make_selection_tools, make_training_tools
from tools.training_jobs import JobManager

SAME = {"n_images": 100, "class_counts": {"a": 50, "b": 50}, "intensity_mean": 0.4, "intensity_std": 0.2,
        "mean_side": 128.0}


def _tools(tools):
    return {t.name: t for t in tools}


def test_catalog_is_readable_and_json_able():
    tools = _tools(make_selection_tools(dict))
    records = tools["read_algorithm_catalog"].invoke({})
    assert len(records) >= 5
    assert {"name", "full_name", "key_idea", "category", "choose_when", "hyperparameters"} <= set(records[0])
    json.dumps(records)


def test_identical_clients_have_no_skew():
    s = federation_summary({"site_01": dict(SAME), "site_02": dict(SAME)})
    assert s["label_skew"]["mean_js"] == 0.0
    assert s["feature_skew"]["score"] == 0.0
    assert s["total_images"] == 200 and s["clients_missing_a_class"] == []


def test_disjoint_labels_and_shifted_scanners_are_high_skew():
    a = {**SAME, "class_counts": {"a": 100}, "intensity_mean": 0.2}
    b = {**SAME, "class_counts": {"b": 100}, "intensity_mean": 0.6}
    s = federation_summary({"site_01": a, "site_02": b})
    assert s["label_skew"]["mean_js"] > 0.3  # JS(one-hot, 50/50) = 0.311 bits
    assert s["feature_skew"]["score"] >= 1.0
    assert s["clients_missing_a_class"] == ["site_01", "site_02"]


def test_statistics_tool_reads_reports_and_answers_when_none():
    stats = {"site_01": dict(SAME)}
    assert _tools(make_selection_tools(lambda: stats))["federation_statistics"].invoke({})["clients"] == 1
    msg = _tools(make_selection_tools(dict))["federation_statistics"].invoke({})
    assert isinstance(msg, str) and "no client" in msg


DEFAULTS = {"image_size": 16, "model": "tiny_cnn", "num_threads": 1, "batch_size": 8}


def _wait(status_tool, job_id: str, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = status_tool.invoke({"job_id": job_id})
        if st["state"] != "running" or time.monotonic() > deadline:
            return st
        time.sleep(0.5)


def test_training_job_runs_to_a_report(clients, tmp_path):
    manager = JobManager(tmp_path / "runs")
    tools = _tools(make_training_tools(clients, tmp_path / "runs", DEFAULTS, manager=manager))
    try:
        job = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": 2, "local_epochs": 1,
                                               "bn_calibration": "local", "global_pool": "catavgmax"})
        assert job["sites"] == ["site_01", "site_02"] and job["bn_calibration"] == "local"
        assert job["global_pool"] == "catavgmax"
        st = _wait(tools["training_status"], job["job_id"])
        assert st["state"] == "finished", st
        assert st["rounds_done"] == 2 and len(st["recent_rounds"]) == 2
        rep = tools["training_report"].invoke({"job_id": job["job_id"]})
        assert rep["rounds_completed"] == 2 and set(rep["per_site"]) == {"site_01", "site_02"}
        assert 0.0 <= rep["final_test"]["balanced_accuracy"] <= 1.0
        text = json.dumps(rep)
        assert str(tmp_path) not in text  # client folders stay with the runtime
        config = manager.jobs[job["job_id"]].summary()["config"]
        assert config["bn_calibration"] == "local" and config["global_pool"] == "catavgmax"
    finally:
        manager.stop_all()


def test_stop_ends_a_running_job_and_a_launch_keeps_the_consortium_optimizer_unless_told(clients, tmp_path):
    manager = JobManager(tmp_path / "runs")
    consortium = {**DEFAULTS, "optimizer": "adam", "lr": 1e-3}  # what a suite's train: block fixes
    tools = _tools(make_training_tools(clients, tmp_path / "runs", consortium, manager=manager))
    try:
        job = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": 200,
                                               "sites": ["site_01", "site_02"]})
        assert (job["optimizer"], job["lr"], job["batch_size"]) == ("adam", 1e-3, 8)
        told = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": 200, "lr": 0.05, "batch_size": 4})
        assert (told["optimizer"], told["lr"], told["batch_size"]) == ("adam", 0.05, 4)
        tools["stop_training"].invoke({"job_id": told["job_id"]})
        stopped = tools["stop_training"].invoke({"job_id": job["job_id"]})
        assert stopped["state"] == "stopped"
        assert stopped["rounds_done"] < 200
        msg = tools["training_report"].invoke({"job_id": job["job_id"]})
        assert isinstance(msg, str) and "no final report" in msg
    finally:
        manager.stop_all()


@pytest.mark.parametrize(("args", "expect"), [
    ({"algorithm": "fedfoo"}, "choose one of"),
    ({"algorithm": "fedavg", "sites": ["site_99"]}, "approved sites: site_01, site_02"),
    ({"algorithm": "fedprox", "algorithm_params": {"nonsense": 1}}, "hyper-parameters"),
    ({"algorithm": "fedavg", "rounds": 0}, "rounds"),
    ({"algorithm": "fedavg", "bn_calibration": "site"}, "bn_calibration"),
    ({"algorithm": "fedavg", "global_pool": "median"}, "global_pool"),
    ({"algorithm": "fedavg", "sites": ["site_01"]}, "a federation needs at least 2 sites"),
])
def test_bad_launch_arguments_are_answered(clients, tmp_path, args, expect):
    tools = _tools(make_training_tools(clients, tmp_path / "runs", DEFAULTS))
    msg = tools["launch_training"].invoke(args)
    assert isinstance(msg, str) and expect in msg
    unknown = tools["training_status"].invoke({"job_id": "job_x"})
    assert "no job" in unknown
