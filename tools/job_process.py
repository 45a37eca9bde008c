"""The training job's own side: the parent watchdog, the exit file, and running one job's config.

A job is ``python -m tools.job_process <job_dir>/config.json``, launched by
:class:`tools.training_jobs.JobManager`. It exits as soon as the process that launched it is gone
(it polls its parent pid; see :mod:`tools.training_jobs` for why not ``PR_SET_PDEATHSIG``), and says
how it ended in ``exit.json`` so that a later process can tell a crash (not restarted: it would
crash again) from a kill (restarted from the last checkpoint).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

from fl_core.config import RunConfig
from fl_core.pids import pid_alive

log = logging.getLogger(__name__)
#: Written by the job itself when it ends on its own: ``{"code": int, "reason": str}``.
EXIT_FILE = "exit.json"
#: Environment variable telling a job which pid launched it (the watchdog's parent).
PARENT_ENV = "FEDAGENTBENCH_JOB_PARENT"
#: Set for a job forked by :mod:`tools.job_server`: the launcher's start time (:func:`start_time`).
#: Such a job's parent is the server, so it watches the launcher by pid and start time instead.
PARENT_STARTED_ENV = "FEDAGENTBENCH_JOB_PARENT_STARTED"
#: Exit code of a job whose parent died; such a job is restarted on re-attachment.
PARENT_DIED = 70
WATCH_SECONDS = 0.5


def send_signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot, from ``/proc``), or None where unknown.

    With the pid it names one process for good: a pid recycled after the process died has another.
    """
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def pid_runs(pid: int, job_dir: Path | None = None, started: str | None = None) -> bool:
    """Whether ``pid`` is a live (not zombie) process; with ``job_dir``, also that it runs that job,
    with ``started`` (see :func:`start_time`), also that it is the same process as then.

    Both checks guard against a recycled pid being taken for the job or its launcher. Where ``/proc``
    is missing (not Linux) only existence is checked.
    """
    if not pid_alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    if not proc.exists():
        return True
    try:
        if started is not None and start_time(pid) != started:
            return False
        return job_dir is None or str(job_dir) in proc.joinpath("cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        return False


def write_exit(job_dir: Path, code: int, reason: str) -> None:
    tmp = job_dir / (EXIT_FILE + ".tmp")
    tmp.write_text(json.dumps({"code": code, "reason": reason[:500]}))
    os.replace(tmp, job_dir / EXIT_FILE)


def watch_parent(parent: int, job_dir: Path, started: str | None = None) -> None:
    """Exit the job as soon as the process that launched it is gone: we were re-parented, or (a
    forked job, ``started`` given) that pid no longer runs the process that started then."""
    while True:
        if (not pid_runs(parent, started=started)) if started else os.getppid() != parent:
            write_exit(job_dir, PARENT_DIED, f"the launching process {parent} ended")
            os._exit(PARENT_DIED)
        time.sleep(WATCH_SECONDS)


def main(config_path: str) -> int:
    """Train the job in ``config_path`` (resuming its checkpoint) and record how it ended."""
    from fedagentbench.training import run

    job_dir = Path(config_path).parent
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if parent:
        threading.Thread(target=watch_parent, args=(parent, job_dir, os.environ.get(PARENT_STARTED_ENV) or None),
                         daemon=True, name="parent-watchdog").start()
    spec = json.loads(Path(config_path).read_text())
    cfg = RunConfig(**spec["config"])
    logging.basicConfig(level=logging.INFO)
    try:
        result = run(cfg, baselines=bool(spec.get("baselines")))
    except BaseException as exc:
        write_exit(job_dir, 1, f"{type(exc).__name__}: {exc}")
        raise
    write_exit(job_dir, 0, "finished")
    log.info("finished: %d rounds, final %s", result.rounds_completed, result.final)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
