"""Whether a process still runs, counting a zombie (exited, not yet reaped by its parent) as gone.

One rule for every watcher: the training jobs' records (``tools.job_process.pid_runs``) and the
Flower launcher's check for a ServerApp that died silently (``fl_core.flower.launch``). It imports
nothing beyond the standard library, since training job processes import it at start-up.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["pid_alive", "running_state"]


def running_state(stat: str) -> bool:
    """A process state letter (``ps -o stat``, ``/proc/<pid>/stat``) that is a live process."""
    return bool(stat) and stat[0] not in ("Z", "X")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (``/proc`` on Linux, ``ps`` elsewhere)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    try:
        return running_state(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0])
    except (OSError, IndexError):
        pass  # no /proc here, or the process ended just now: ask ps
    try:
        out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], check=False, capture_output=True,
                             text=True).stdout
    except OSError:
        return True  # cannot tell: assume it runs, so that nothing is stopped early
    return running_state(out.strip())
