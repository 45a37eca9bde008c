"""Stop a Flower process group when the process that started it is gone (even after SIGKILL).

The launcher stops every group it started on success, error and Ctrl-C (:mod:`fl_core.flower.processes`);
what it cannot cover is its own SIGKILL. So the SuperLink and SuperNode wrappers watch the pid named
in :data:`PARENT_ENV` and, when it exits, send SIGTERM to their own process group (their
``flower-superexec`` and app children included), then SIGKILL after a grace period.
"""

from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["PARENT_ENV", "watch_parent"]

PARENT_ENV = "FEDAGENTBENCH_FLOWER_PARENT"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch(pid: int, interval: float, grace: float) -> None:
    while _alive(pid) and os.getppid() != 1:
        time.sleep(interval)
    group = os.getpgrp()
    os.killpg(group, signal.SIGTERM)
    time.sleep(grace)
    os.killpg(group, signal.SIGKILL)


def watch_parent(interval: float = 1.0, grace: float = 5.0) -> bool:
    """Start the watch thread when :data:`PARENT_ENV` names a pid; returns whether it started."""
    raw = os.environ.get(PARENT_ENV)
    if not raw:
        return False
    threading.Thread(target=_watch, args=(int(raw), interval, grace), daemon=True, name="parent-watch").start()
    return True
