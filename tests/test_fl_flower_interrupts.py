"""A Flower deployment run started from the CLI and stopped mid-run with Ctrl-C (SIGINT: Python's
KeyboardInterrupt), SIGTERM (the launcher's own handler turns it into SystemExit) or SIGKILL (no
handler runs: the processes' parent watchdogs must notice): every process it started is stopped,
the ServerApp included (checked by process group and by the ServerApp's pid)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from fl_core.flower.server_app import PID_FILE
from fl_core.pids import pid_alive
from tests.flower_helpers import REPO, assert_all_gone, make_sites

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return make_sites(tmp_path_factory.mktemp("sites"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_an_interrupted_run_stops_every_process(sites, tmp_path, sig):
    cmd = [sys.executable, "-m", "fedagentbench.cli", "train", "--data", *sites, "--engine", "flower-deployment",
           "--rounds", "50", "--image-size", "16", "--batch-size", "8", "--out", str(tmp_path / "run"), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    pids: list[int] = []
    try:
        for line in proc.stderr:  # the launcher logs every process it starts
            found = re.search(r"started (\S+) \(pid (\d+)\)", line)
            if found:
                pids.append(int(found.group(2)))
            if found and found.group(1).startswith("flwr-run"):
                break
        drain = threading.Thread(target=proc.stderr.read, daemon=True)  # a full pipe would block the launcher
        drain.start()
        logs = tmp_path / "run" / "flower_logs"
        deadline = time.monotonic() + 240
        serverapp = tmp_path / "run" / PID_FILE
        while time.monotonic() < deadline and proc.poll() is None and not (serverapp.exists() and all(  # mid-run
                "SuperNode ID" in p.read_text(errors="replace") for p in logs.glob("supernode-*.log"))):
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        os.kill(proc.pid, sig)
        assert proc.wait(60) != 0
        assert len(pids) == 4  # SuperLink, two SuperNodes, flwr run
        assert_all_gone(pids)
        server_pid = int(serverapp.read_text())
        deadline = time.monotonic() + 15
        while pid_alive(server_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not pid_alive(server_pid), "the ServerApp outlived its launcher"
    except BaseException:  # a failed check must not leave a 50-round federation running for the rest of the suite
        _kill_everything(proc, pids)
        raise


def _kill_everything(proc: subprocess.Popen, pids: list[int]) -> None:
    """Only after a failure: the pids are then the run's live processes, not numbers reused since."""
    for pid in [proc.pid, *pids]:
        try:
            os.killpg(pid, signal.SIGKILL) if pid == proc.pid else os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()
