"""The runner's bookkeeping (rows, resume, summaries) and its worker processes; the full suite end to
end with resume is test_evals_full_suite.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from evals.models import REGISTRY
from evals.results import ROLES, append_rows, done_trials, load_rows, summarize
from evals.tables import CSV_COLUMNS, write_summaries
from evals.trial import rows_from_report


def trial_rows(model="m", task="t1", guidance="fine-grained", trial=0, passed=(True,) * 7, modality="xray",
               tags=("implicit-goal", "interdependent"), cost=0.01):
    return [{"model": model, "task_id": task, "guidance": guidance, "trial": trial, "modality": modality,
             "tags": list(tags), "role": r, "passed": p, "failure_category": None if p else (
                 "harness_error" if p is None else "wrong_decision"), "explanation": "",
             "input_tokens": 100, "output_tokens": 10, "tool_calls": 2, "cost_usd": cost, "run_seconds": 5.0,
             "fed_bacc": 0.7, "local_bacc": 0.6, "pooled_bacc": 0.8} for r, p in zip(ROLES, passed)]


def test_overall_is_successes_over_seven_per_trial_and_pass_k_needs_every_trial():
    fail_s3 = (True, True, True, True, True, False, True)
    rows = trial_rows(trial=0) + trial_rows(trial=1, passed=fail_s3) + trial_rows(task="t2") + trial_rows(
        task="t2", trial=1)
    s = summarize(rows).iloc[0]
    assert s["S3"] == 75.0 and s["S1"] == 100.0
    assert s["overall"] == round(100 * 27 / 28, 1)
    assert s["pass^k"] == 50.0 and s["tasks"] == 2 and s["trials"] == 4
    assert s["cost_usd"] == pytest.approx(4 * 7 * 0.01) and s["fed_bacc"] == 0.7


def test_unscored_roles_are_excluded_and_counted():
    rows = trial_rows(passed=(True, None, True, False, True, True, True))
    s = summarize(rows).iloc[0]
    assert s["C1"] != s["C1"]  # NaN: nothing scored
    assert s["overall"] == round(100 * 5 / 6, 1) and s["unscored"] == 1


def test_results_survive_a_torn_line_and_keep_the_last_copy(tmp_path):
    path = tmp_path / "results.jsonl"
    append_rows(path, trial_rows(trial=0, passed=(None,) * 7))  # a harness error ...
    append_rows(path, trial_rows(trial=1))
    assert done_trials(load_rows(path)) == {("m", "t1", "fine-grained", 1)}  # ... is retried on resume
    append_rows(path, trial_rows(trial=0))  # the retry
    with open(path, "a") as fh:
        fh.write(json.dumps(trial_rows(trial=2)[0])[:40])  # a crash mid-write
    rows = load_rows(path)
    assert len(rows) == 14
    assert all(r["passed"] for r in rows)
    assert done_trials(rows) == {("m", "t1", "fine-grained", 0), ("m", "t1", "fine-grained", 1)}
    append_rows(path, trial_rows(trial=2))  # the resumed run's rows start on a line of their own
    assert ("m", "t1", "fine-grained", 2) in done_trials(load_rows(path))


def test_a_trial_missing_roles_is_not_done(tmp_path):
    path = tmp_path / "results.jsonl"
    append_rows(path, trial_rows()[:5])
    assert load_rows(path) == [] and done_trials(load_rows(path)) == set()


def _report(passed=True):
    return {"roles": {r: {"passed": passed, "failure_category": None, "explanation": "ok"} for r in ROLES},
            "usage_by_role": {"S1": {"calls": 2, "input_tokens": 1_000_000, "output_tokens": 100_000,
                                     "tool_calls": 2, "estimated": 0}},
            "outcomes": [{"role": "C2", "seconds": 3.0}, {"role": "C2", "seconds": 4.5}],
            "metrics": {"federated": {"balanced_accuracy": 0.81}, "local_only_mean": 0.7, "pooled": 0.85},
            "phase_seconds": {"phase_1": 1.0}, "algorithm": {"algorithm": "fedavg"}}


def test_rows_carry_usage_cost_and_accuracy_per_role():
    rows = rows_from_report({"model": "gpt-4.1"}, _report(), REGISTRY["gpt-4.1"], [], 12.0)
    assert [r["role"] for r in rows] == list(ROLES)
    s1, c2 = rows[0], rows[3]
    assert s1["cost_usd"] == pytest.approx(2.00 + 0.1 * 8.00) and s1["phase"] == 1
    assert c2["role_seconds"] == 4.5 and c2["phase"] == 2 and c2["cost_usd"] == 0
    assert s1["fed_bacc"] == 0.81 and s1["pooled_bacc"] == 0.85 and s1["run_seconds"] == 12.0


def test_a_replay_miss_unscores_the_whole_trial():
    rows = rows_from_report({"model": "x"}, _report(), REGISTRY["scripted"], ["replay miss for x: ..."], 1.0)
    assert len(rows) == 7 and all(r["passed"] is None and r["failure_category"] == "replay_miss" for r in rows)


def test_summaries_and_plots_are_written(tmp_path):
    rows = trial_rows() + trial_rows(model="scripted", modality="mri", tags=(), cost=0.0)
    write_summaries(tmp_path, rows)
    csv = pd.read_csv(tmp_path / "summary.csv")
    assert list(csv.columns) == CSV_COLUMNS and len(csv) == 2
    md = (tmp_path / "summary.md").read_text()
    assert "| model | S1 | C1 | S2 | C2 | C3 | S3 | S4 | overall |" in md and "not an LLM" in md
    assert (tmp_path / "role_heatmap.png").stat().st_size > 0 and (tmp_path / "cost_vs_overall.png").exists()


_ORPHAN_SCRIPT = '''
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from evals.runner import _init_worker


def work(path):
    with open(path + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(120)


if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_init_worker)
    pool.submit(work, sys.argv[1])
    time.sleep(120)
'''


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            state = next(ln for ln in fh if ln.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "Z" not in state.split()[1]  # a zombie has ended; only its exit status is left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_killed_runner_leaves_no_worker_running(tmp_path):
    script, pid_file = tmp_path / "runner.py", tmp_path / "worker.pid"
    script.write_text(_ORPHAN_SCRIPT)
    runner = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=Path(__file__).parents[1])
    deadline = time.monotonic() + 90
    while not pid_file.exists() and time.monotonic() < deadline and runner.poll() is None:
        time.sleep(0.2)
    assert pid_file.exists(), "the worker never started"
    worker = int(pid_file.read_text())
    assert _alive(worker)
    runner.kill()  # SIGKILL: the runner cannot clean up after itself
    runner.wait()
    deadline = time.monotonic() + 20
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), f"worker {worker} outlived its runner"
