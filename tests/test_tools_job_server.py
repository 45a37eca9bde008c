"""Training jobs forked from the warm job server (tools/job_server.py) are what a subprocess job was:
their own session, their log as output, an exit code the manager reads, stoppable; with the server
turned off a job is a plain subprocess of the launcher."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tools import job_server
from tools.federate import make_training_tools
from tools.job_process import EXIT_FILE
from tools.training_jobs import _CHILDREN, JobManager

DEFAULTS = {"image_size": 16, "model": "tiny_cnn", "num_threads": 1, "batch_size": 8}


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _launch(clients, runs: Path, rounds: int):
    manager = JobManager(runs)
    tools = {t.name: t for t in make_training_tools(clients, runs, DEFAULTS, manager=manager)}
    job_id = tools["launch_training"].invoke({"algorithm": "fedavg", "rounds": rounds})["job_id"]
    return manager, manager.jobs[job_id]


def test_a_job_is_forked_by_the_server_in_its_own_session_and_its_exit_code_comes_back(clients, tmp_path):
    manager, job = _launch(clients, tmp_path / "runs", rounds=2)
    try:
        handle = _CHILDREN[job.record.pid]
        assert isinstance(handle, job_server.ForkedJob)
        if handle.poll() is None:  # still running: check where it runs
            assert os.getsid(job.record.pid) == job.record.pid
            assert _ppid(job.record.pid) not in (os.getpid(), 1)  # the server's child, not ours
        assert handle.wait(120) == 0 and job.state == "finished"
        assert json.loads((job.out_dir / EXIT_FILE).read_text())["code"] == 0
        assert "finished: 2 rounds" in job.log_tail()  # its stdout/stderr went to the job's log
        assert job.record.job_started  # its identity for a later process: pid and start time
    finally:
        manager.stop_all()


def test_a_forked_job_is_stopped_by_the_manager(clients, tmp_path):
    manager, job = _launch(clients, tmp_path / "runs", rounds=200)
    manager.stop(job)
    assert not job.alive() and job.state == "stopped"
    assert _CHILDREN[job.record.pid].returncode not in (None, 0)


def test_with_the_server_off_a_job_is_a_subprocess_of_the_launcher(clients, tmp_path, monkeypatch):
    monkeypatch.setenv(job_server.ENABLE_ENV, "0")
    manager, job = _launch(clients, tmp_path / "runs", rounds=2)
    try:
        handle = _CHILDREN[job.record.pid]
        assert not isinstance(handle, job_server.ForkedJob)
        deadline = time.monotonic() + 120
        while job.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.state == "finished" and handle.returncode == 0
    finally:
        manager.stop_all()
