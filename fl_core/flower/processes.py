"""Flower's processes on this machine: a SuperLink and one SuperNode per site, each in its own group.

Each command starts in a new session (its own process group), so stopping it stops everything it
started: a SuperNode's ``flower-superexec`` and its ``flwr-clientapp`` children, a SuperLink's
ServerApp. :class:`Processes` stops every group it started on exit from its ``with`` block, whether
the run succeeded, failed or was interrupted (Ctrl-C), first with SIGTERM, then SIGKILL.

Insecure mode (no TLS, no node authentication) is for local testing only: on a network, start the
SuperLink with ``--ssl-ca-certfile/--ssl-certfile/--ssl-keyfile`` and ``--enable-supernode-auth``,
and each SuperNode with ``--root-certificates`` and ``--auth-supernode-private-key`` (README).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

import httpx

from fl_core.pids import running_state

__all__ = ["LOCALHOST", "Processes", "Started", "free_port", "group_alive", "venv_env"]

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def venv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This interpreter's environment for Flower's commands: its ``bin`` first on ``PATH`` (a SuperNode
    starts ``flower-superexec`` by name) and this checkout on ``PYTHONPATH`` (the apps import
    ``fl_core`` and ``algorithms``)."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env.update(extra or {})
    return env


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies count as gone)."""
    try:
        out = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return any(int(p) == pgid and running_state(s) for p, s in (line.split() for line in out.splitlines()))


@dataclass
class Started:
    """One command started by :class:`Processes`."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 15) -> str:
        """The last lines of its log (for error messages)."""
        if not self.log_file.closed:
            self.log_file.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class Processes:
    """Start commands in their own process groups; stop every group on exit."""

    def __init__(self, log_dir: str | Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.env = env or venv_env()
        self.started: list[Started] = []

    def __enter__(self) -> Self:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Started:
        """Run ``cmd`` in a new session with its output in ``<log_dir>/<name>.log``."""
        path = self.log_dir / f"{name}.log"
        f = open(path, "ab")  # noqa: SIM115 - closed in stop()
        popen = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**self.env, **(env or {})}, start_new_session=True)
        proc = Started(name, popen, path, f)
        self.started.append(proc)
        log.info("started %s (pid %d): %s", name, popen.pid, " ".join(cmd))
        return proc

    def stop(self, proc: Started, grace: float = 5.0) -> None:
        """SIGTERM to the process's whole group, SIGKILL after ``grace`` seconds; reap the leader."""
        pgid = proc.pid  # a session leader's pid is its group's id
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                proc.popen.poll()
                if not group_alive(pgid):
                    break
                time.sleep(0.05)
            else:
                continue
            break
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %d) did not exit after SIGKILL", proc.name, proc.pid)
        proc.log_file.close()

    def stop_all(self) -> None:
        """Stop every group, newest first (nodes before the SuperLink)."""
        while self.started:
            self.stop(self.started.pop())


def wait_http(port: int, proc: Started, timeout: float, what: str) -> None:
    """Wait until ``http://127.0.0.1:port/health`` answers; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.popen.returncode} before it was ready:\n{proc.tail()}")
        try:
            if httpx.get(f"http://{LOCALHOST}:{port}/health", timeout=1.0).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on port {port} within {timeout:g} s:\n{proc.tail()}")
