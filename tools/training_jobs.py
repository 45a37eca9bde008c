"""Federated training runs as background jobs: one process per run, recorded on disk in the run folder.

A process (not a thread) runs :func:`fl_core.run`, so a run can be stopped at any moment and a
crash in training never takes the agent's graph down with it. The process is forked from this
process's warm job server (:mod:`tools.job_server`: the imports a fresh Python paid per job were
most of a small job's time), or is a fresh subprocess where the server is off or cannot start. Progress is read from the files the
engine writes (``history.jsonl`` after every round, ``summary.json`` at the end).

Each job folder holds a record, ``job.json`` (id, pid, the pid of the process that launched it,
sites, rounds, status, folder, restarts), next to ``config.json``. The job table is those files, not
this process's memory, so a run resumed after a kill (``fedagentbench run --thread-id ...``) finds
its jobs again: :meth:`JobManager.get` re-attaches to a job that is still running or has finished,
and restarts one that was killed from its last per-round checkpoint (fl_core resumes ``out_dir``).

A job dies with the process that launched it. The job runs a watchdog thread that polls its parent
pid (:func:`tools.job_process.watch_parent`) and exits when the parent is gone. ``PR_SET_PDEATHSIG`` was not used: it
fires when the launching *thread* ends, and LangGraph runs tools on worker threads that end with each
graph step, which would kill healthy jobs; it is also Linux-only.

The job's own side (the watchdog, its exit file) is :mod:`tools.job_process`; run one job by hand
with ``python -m tools.job_process <job_dir>/config.json``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fl_core.config import RunConfig
from tools import job_server
from tools.job_process import EXIT_FILE, PARENT_DIED, PARENT_ENV, pid_runs, send_signal, start_time

log = logging.getLogger(__name__)
JOB_FILE = "job.json"
#: A killed job is restarted from its checkpoint at most this many times.
MAX_RESTARTS = 3
#: Handles of the jobs this process launched (pid -> process), shared by every manager.
_CHILDREN: dict[int, subprocess.Popen | job_server.ForkedJob] = {}


@dataclass
class JobRecord:
    """What ``job.json`` holds; enough to find, judge and restart a job from another process."""

    job_id: str
    out_dir: str
    sites: list[str]
    rounds: int
    baselines: bool
    pid: int
    parent_pid: int
    status: str = "running"  # running | stopped | finished | failed (last seen)
    stopped: bool = False  # stop was asked for: never restarted
    restarts: int = 0
    started: float = 0.0
    config_file: str = "config.json"  # the run's RunConfig and baselines flag, next to this record
    parent_started: str | None = None  # the launcher's start time: tells it from a process with a recycled pid
    job_started: str | None = None  # the job's own start time (its pid's identity, forked or not)

    def save(self) -> None:
        """Write atomically, so a kill never leaves half a record."""
        path = Path(self.out_dir) / JOB_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, job_dir: Path) -> JobRecord | None:
        try:
            data = json.loads((job_dir / JOB_FILE).read_text())
            return cls(**{**data, "out_dir": str(job_dir)})
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring the unreadable job record in %s: %s", job_dir, exc)
            return None


class Job:
    """One launched run: its record, its process (if this process launched it) and its report files."""

    def __init__(self, record: JobRecord) -> None:
        self.record = record

    job_id = property(lambda self: self.record.job_id)
    sites = property(lambda self: self.record.sites)
    rounds = property(lambda self: self.record.rounds)
    out_dir = property(lambda self: Path(self.record.out_dir))
    stopped = property(lambda self: self.record.stopped)

    def alive(self) -> bool:
        """Whether the job's process still runs (a launched child is polled, others probed by pid)."""
        child = _CHILDREN.get(self.record.pid)
        if child is not None:
            return child.poll() is None
        started = self.record.job_started  # else (older records) the job folder on its command line
        return pid_runs(self.record.pid, self.out_dir if started is None else None, started=started)

    def exit_info(self) -> dict[str, Any] | None:
        path = self.out_dir / EXIT_FILE
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except (OSError, ValueError):
            return None

    @property
    def state(self) -> str:
        """``running``, ``finished``, ``stopped`` or ``failed``; a change is written to the record."""
        if self.alive():
            state = "running"
        elif self.stopped:
            state = "stopped"
        else:
            state = "finished" if (self.out_dir / "summary.json").exists() else "failed"
        if state != self.record.status:
            self.record.status = state
            self.record.save()
        return state

    def killed(self) -> bool:
        """Ended without a report and without saying why (SIGKILL) or because its parent died."""
        if self.alive() or self.stopped or (self.out_dir / "summary.json").exists():
            return False
        info = self.exit_info()
        return info is None or info.get("code") == PARENT_DIED

    def history(self) -> list[dict[str, Any]]:
        path = self.out_dir / "history.jsonl"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                break
        return rows

    def summary(self) -> dict[str, Any] | None:
        path = self.out_dir / "summary.json"
        return json.loads(path.read_text()) if path.exists() else None

    def log_tail(self, chars: int = 400) -> str:
        path = self.out_dir / "job.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class JobManager:
    """Launches, finds, re-attaches, restarts and stops training subprocesses under one folder."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.jobs: dict[str, Job] = {}

    def launch(self, config: RunConfig, sites: list[str], baselines: bool) -> Job:
        """Start ``config`` (its ``out_dir`` is replaced by a fresh job folder) in a subprocess."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        n = sum(1 for p in self.out_dir.iterdir() if (p / JOB_FILE).exists()) + 1
        job_id = f"job_{n:03d}_{uuid.uuid4().hex[:6]}"
        job_dir = self.out_dir / job_id
        job_dir.mkdir(parents=True)
        cfg = config.replace(out_dir=str(job_dir), progress=False)
        (job_dir / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "baselines": baselines}))
        record = JobRecord(job_id, str(job_dir), list(sites), cfg.rounds, baselines, pid=0, parent_pid=os.getpid(),
                           started=time.time())
        job = Job(record)
        self._start(job, cfg.num_threads)
        self.jobs[job_id] = job
        return job

    def _start(self, job: Job, threads: int) -> None:
        """Start the job's process (appending to its log) and record its pid."""
        job_dir = job.out_dir
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), PARENT_ENV: str(os.getpid())}
        (job_dir / EXIT_FILE).unlink(missing_ok=True)
        config = job_dir / job.record.config_file
        proc: subprocess.Popen | job_server.ForkedJob | None = None
        if job_server.enabled():
            try:
                proc = job_server.launch(config, job_dir / "job.log", env)
            except OSError as exc:
                log.warning("the job fork server is unavailable (%s); starting a subprocess", exc)
        if proc is None:
            with open(job_dir / "job.log", "a") as logf:
                proc = subprocess.Popen([sys.executable, "-m", "tools.job_process", str(config)],
                                        stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        job.record.pid, job.record.parent_pid, job.record.status = proc.pid, os.getpid(), "running"
        job.record.job_started = start_time(proc.pid)
        job.record.parent_started = start_time(os.getpid())
        job.record.save()

    def known(self) -> list[str]:
        """Ids of every job recorded under the folder (this process's and earlier ones')."""
        on_disk = {p.name for p in self.out_dir.iterdir() if (p / JOB_FILE).exists()} if self.out_dir.is_dir() else set()
        return sorted(on_disk | set(self.jobs))

    def get(self, job_id: str) -> Job | None:
        """The job ``job_id``, re-attached from its record if an earlier process launched it.

        A job whose launcher died is waited for (its watchdog ends it within a second) and, if it
        was killed before its report, restarted from its last checkpoint: the resumed run goes on
        where the killed one stopped instead of losing the training.
        """
        if job_id in self.jobs:
            return self.jobs[job_id]
        job_dir = self.out_dir / job_id
        if not job_id or "/" in job_id or job_id.startswith(".") or not (job_dir / JOB_FILE).exists():
            return None
        record = JobRecord.load(job_dir)
        if record is None:
            return None
        job = Job(record)
        self.jobs[job_id] = job
        if record.parent_pid != os.getpid() and not pid_runs(record.parent_pid, started=record.parent_started):
            self._end_orphan(job)
            if job.killed() and record.restarts < MAX_RESTARTS:
                record.restarts += 1
                log.info("restarting training job %s from its checkpoint (restart %d)", job_id, record.restarts)
                threads = json.loads((job_dir / record.config_file).read_text())["config"].get("num_threads", 1)
                self._start(job, int(threads))
        return job

    def _end_orphan(self, job: Job, grace: float = 5.0) -> None:
        """A job whose launcher is gone ends by itself within a second; end it if it does not."""
        deadline = time.monotonic() + grace
        while job.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if job.alive():
            log.warning("job %s outlived its launcher; killing pid %d", job.job_id, job.record.pid)
            send_signal(job.record.pid, signal.SIGKILL)
            while job.alive() and time.monotonic() < deadline + grace:
                time.sleep(0.1)

    def stop(self, job: Job, timeout: float = 30.0) -> None:
        """Terminate the job's process (and wait for it); its finished rounds stay on disk."""
        if not job.alive():
            return
        job.record.stopped = True
        job.record.save()
        child = _CHILDREN.get(job.record.pid)
        if child is not None:
            child.terminate()
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout)
            return
        send_signal(job.record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while job.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if job.alive():
            send_signal(job.record.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for job in self.jobs.values():
            self.stop(job)
