"""Training jobs survive the death of the process that launched them: recorded on disk, never orphaned,
re-attached and restarted from their checkpoint by the next process (tiny data, offline)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tools.federate import make_training_tools
from tools.job_process import pid_runs
from tools.training_jobs import JOB_FILE, JobManager

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = {"image_size": 16, "model": "tiny_cnn", "num_threads": 1, "batch_size": 8}

LAUNCHER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from tools.federate import make_training_tools
    clients = json.loads(sys.argv[2])
    tools = {t.name: t for t in make_training_tools({k: Path(v) for k, v in clients.items()}, Path(sys.argv[1]),
                                                    json.loads(sys.argv[3]))}
    job = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": int(sys.argv[4])})
    print(json.dumps(job), flush=True)
    time.sleep(600)
""")


def _until(cond, timeout: float = 120.0, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def test_a_job_is_recorded_on_disk_and_found_by_a_new_manager(clients, tmp_path):
    runs = tmp_path / "runs"
    manager = JobManager(runs)
    tools = {t.name: t for t in make_training_tools(clients, runs, DEFAULTS, manager=manager)}
    try:
        job_id = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": 1})["job_id"]
        record = json.loads((runs / job_id / JOB_FILE).read_text())
        assert record["job_id"] == job_id and record["pid"] > 0 and record["parent_pid"] == os.getpid()
        assert record["sites"] == ["site_01", "site_02"] and record["status"] == "running"
        # another tool set (as after a graph resume in the same process) knows the job from its record
        other = {t.name: t for t in make_training_tools(clients, runs, DEFAULTS)}
        assert _until(lambda: other["training_status"].invoke({"job_id": job_id})["state"] != "running")
        assert other["training_report"].invoke({"job_id": job_id})["rounds_completed"] == 1
        assert json.loads((runs / job_id / JOB_FILE).read_text())["status"] == "finished"
        msg = other["training_status"].invoke({"job_id": "job_999_nope"})
        assert isinstance(msg, str) and job_id in msg  # the unknown-id answer lists the recorded jobs
    finally:
        manager.stop_all()


@pytest.mark.slow
def test_a_killed_launcher_takes_its_job_along_and_the_next_one_resumes_it(clients, tmp_path):
    runs, rounds = tmp_path / "runs", 100  # 25 finished before the kill once jobs started faster (~0.05 s a round)
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(runs), json.dumps({k: str(v) for k, v in clients.items()}),
                             json.dumps(DEFAULTS), str(rounds)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        job_id = json.loads(proc.stdout.readline())["job_id"]
        job_dir = runs / job_id
        assert _until(lambda: (job_dir / "checkpoint.pt").exists()), "the job never finished a round"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    pid = json.loads((job_dir / JOB_FILE).read_text())["pid"]
    assert _until(lambda: not pid_runs(pid), timeout=30), "the training process outlived its launcher"
    assert not (job_dir / "summary.json").exists(), "the job finished before the kill; raise `rounds`"

    manager = JobManager(runs)  # the resumed run's manager: the job table comes from disk
    tools = {t.name: t for t in make_training_tools(clients, runs, DEFAULTS, manager=manager)}
    try:
        assert _until(lambda: tools["training_status"].invoke({"job_id": job_id, "wait_seconds": 5})["state"]
                      != "running", timeout=240)
        report = tools["training_report"].invoke({"job_id": job_id})
        assert report["rounds_completed"] == rounds
        summary = json.loads((job_dir / "summary.json").read_text())
        assert summary["resumed_from"] >= 1, "the restart began from scratch instead of the checkpoint"
        record = json.loads((job_dir / JOB_FILE).read_text())
        assert record["restarts"] == 1 and record["pid"] != pid and record["status"] == "finished"
    finally:
        manager.stop_all()


def test_a_stopped_job_is_not_restarted(clients, tmp_path):
    runs = tmp_path / "runs"
    manager = JobManager(runs)
    tools = {t.name: t for t in make_training_tools(clients, runs, DEFAULTS, manager=manager)}
    job_id = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": 200})["job_id"]
    assert tools["stop_training"].invoke({"job_id": job_id})["state"] == "stopped"
    record = json.loads((runs / job_id / JOB_FILE).read_text())
    record["parent_pid"] = 2 ** 22 + 12345  # as if launched by a process that has since died
    (runs / job_id / JOB_FILE).write_text(json.dumps(record))
    again = JobManager(runs).get(job_id)
    assert again is not None and again.state == "stopped" and again.record.restarts == 0


def test_a_launcher_pid_taken_by_another_process_counts_as_dead(clients, tmp_path):
    """The record keeps the launcher's start time: a recycled pid (here pid 1) does not pass for it."""
    runs = tmp_path / "runs"
    first = JobManager(runs)
    tools = {t.name: t for t in make_training_tools(clients, runs, DEFAULTS, manager=first)}
    job_id = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": 200})["job_id"]
    job = first.jobs[job_id]
    os.kill(job.record.pid, signal.SIGKILL)  # killed outside the manager: no exit file, no report
    assert _until(lambda: not job.alive(), timeout=30)
    record = json.loads((runs / job_id / JOB_FILE).read_text())
    assert record["parent_started"]
    (runs / job_id / JOB_FILE).write_text(json.dumps({**record, "parent_pid": 1, "parent_started": "0"}))
    second = JobManager(runs)
    try:
        again = second.get(job_id)
        assert again is not None and again.record.restarts == 1 and again.record.pid != record["pid"]
        assert again.state == "running"
    finally:
        second.stop_all()
