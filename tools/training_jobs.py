"""Federated training runs as background jobs: one subprocess per run, polled through its report files.

A subprocess (not a thread) runs :func:`fl_core.run`, so a run can be stopped at any moment and a
crash in training never takes the agent's graph down with it. Progress is read from the files the
engine writes (``history.jsonl`` after every round, ``summary.json`` at the end).

Run one job by hand: ``python -m tools.training_jobs <job_dir>/config.json``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fl_core.config import RunConfig

log = logging.getLogger(__name__)
JOB_FILE = "job.json"


@dataclass
class Job:
    """One launched run: its id, folder, process and the site ids in client order."""

    job_id: str
    out_dir: Path
    sites: list[str]
    rounds: int
    process: subprocess.Popen | None = None
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        """``running``, ``finished``, ``stopped`` or ``failed``."""
        code = self.process.poll() if self.process else 0
        if code is None:
            return "running"
        if self.stopped:
            return "stopped"
        return "finished" if code == 0 and (self.out_dir / "summary.json").exists() else "failed"

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
    """Launches, tracks and stops training subprocesses under one output folder."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.jobs: dict[str, Job] = {}

    def launch(self, config: RunConfig, sites: list[str], baselines: bool) -> Job:
        """Start ``config`` (its ``out_dir`` is replaced by a fresh job folder) in a subprocess."""
        job_id = f"job_{len(self.jobs) + 1:03d}_{uuid.uuid4().hex[:6]}"
        job_dir = self.out_dir / job_id
        job_dir.mkdir(parents=True)
        cfg = config.replace(out_dir=str(job_dir), progress=False)
        (job_dir / "config.json").write_text(json.dumps({"config": cfg.to_dict(), "baselines": baselines}))
        (job_dir / JOB_FILE).write_text(json.dumps({"sites": sites}))
        env = {**os.environ, "OMP_NUM_THREADS": str(cfg.num_threads)}
        with open(job_dir / "job.log", "w") as logf:
            proc = subprocess.Popen([sys.executable, "-m", "tools.training_jobs", str(job_dir / "config.json")],
                                    stdout=logf, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        job = Job(job_id, job_dir, sites, cfg.rounds, proc, extra={"baselines": baselines})
        self.jobs[job_id] = job
        return job

    def stop(self, job: Job, timeout: float = 30.0) -> None:
        """Terminate the job's process (and wait for it); its finished rounds stay on disk."""
        if job.process and job.process.poll() is None:
            job.stopped = True
            job.process.terminate()
            try:
                job.process.wait(timeout)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait(timeout)

    def stop_all(self) -> None:
        for job in self.jobs.values():
            self.stop(job)


def _main(config_path: str) -> int:
    from fedagentbench.training import run

    spec = json.loads(Path(config_path).read_text())
    cfg = RunConfig(**spec["config"])
    logging.basicConfig(level=logging.INFO)
    result = run(cfg, baselines=bool(spec.get("baselines")))
    log.info("finished: %d rounds, final %s", result.rounds_completed, result.final)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1]))
