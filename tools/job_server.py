"""A fork server for training jobs: one warm process per launching process, one forked child per job.

Why: a job used to be a fresh ``python -m tools.job_process``, which imports torch (1.5 s here),
then ``torch._dynamo`` at its first optimizer (1.0 s) and matplotlib for the learning curve
(0.4 s): 3.5 s of a 4.5 s five-round job at scale 0.3, and the benchmark launches one job per
trial. The server is started on the first launch as a fresh process (never forked from the
launcher, whose other threads may hold locks a child would inherit), imports all of that once
(:mod:`fl_core.warm`), and forks a child per job that becomes what the subprocess was: its own
session, stdin from ``/dev/null``, stdout and stderr to the job's log, the launcher's environment,
and :func:`tools.job_process.main` on the job's config.

The launcher keeps one connection per job; the server answers with the child's pid at once and
with its exit code when it ends (the server reaps it). :class:`ForkedJob` wraps that connection in
the part of ``subprocess.Popen`` that :class:`tools.training_jobs.JobManager` uses. The server
exits when its launcher does. A forked job's parent is the server, so it watches its launcher by
pid and start time (:func:`tools.job_process.watch_parent`) and exits with it, as a subprocess job
does.

``FEDAGENTBENCH_JOB_FORK_SERVER=0`` turns the server off (every job a fresh subprocess).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = ["ENABLE_ENV", "ForkedJob", "enabled", "launch", "serve"]

log = logging.getLogger(__name__)

ENABLE_ENV = "FEDAGENTBENCH_JOB_FORK_SERVER"
#: Seconds a launch waits for a new server to bind its socket.
START_TIMEOUT = 60.0
_MAX_REQUEST = 1 << 20


def enabled() -> bool:
    """On unless :data:`ENABLE_ENV` says off; Linux only (a forked job watches its launcher by the
    start time ``/proc`` gives)."""
    return (os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")
            and Path("/proc/self/stat").exists())


# ------------------------------------------------------------------------------ the server's side
def _child(request: dict, log_fd: int, ready_fd: int) -> None:
    """In the forked child: become the job (own session, log as stdout and stderr), run it, exit."""
    os.setsid()
    os.write(ready_fd, b"1")  # the launcher hears of the pid only once the job is in its own session
    os.close(ready_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    from tools.job_process import main

    os.chdir(request["cwd"])
    code = 1
    try:
        code = main(request["config"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - as ``python -m`` would: the traceback, exit code 1
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _reap(pid: int, conn: socket.socket) -> None:
    _, status = os.waitpid(pid, 0)
    try:
        conn.send(f"exit {os.waitstatus_to_exitcode(status)}".encode())
    except OSError:  # the launcher is gone or stopped listening
        pass
    finally:
        conn.close()


def _fork_job(conn: socket.socket, listener: socket.socket) -> None:
    msg, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 1)
    if len(fds) != 1:
        conn.close()
        for fd in fds:
            os.close(fd)
        return
    request = json.loads(msg)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        os.close(ready_r)
        _child(request, fds[0], ready_w)
    os.close(fds[0])
    os.close(ready_w)
    os.read(ready_r, 1)  # empty if the child died first: its exit code follows anyway
    os.close(ready_r)
    try:
        conn.send(f"pid {pid}".encode())
    except OSError:
        pass
    threading.Thread(target=_reap, args=(pid, conn), daemon=True).start()


def serve(path: str) -> None:
    """Import what a job needs, then fork a job per request until the launching process exits."""
    parent = os.getppid()
    from fl_core.warm import listen, serve_while_parent, warm_optimizers, warm_plotting

    listener = listen(path)
    import fedagentbench.training  # noqa: F401 - the warm imports this server exists for
    import tools.job_process  # noqa: F401

    warm_optimizers()
    warm_plotting()
    serve_while_parent(listener, parent, _fork_job)


# ---------------------------------------------------------------------------- the launcher's side
class ForkedJob:
    """A job forked by the server, with the part of ``subprocess.Popen`` the JobManager uses."""

    def __init__(self, pid: int, conn: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._conn: socket.socket | None = conn

    def _read(self, timeout: float) -> None:
        if self._conn is None:  # the server went away: the pid is all there is
            from fl_core.pids import pid_alive

            if not pid_alive(self.pid):
                self.returncode = 1
            return
        if not select.select([self._conn], [], [], timeout)[0]:
            return
        msg = self._conn.recv(64)
        if msg.startswith(b"exit "):
            self.returncode = int(msg.split()[1])
            self._conn.close()
            self._conn = None
        elif not msg:  # the server ended before the job: probe the pid from now on
            self._conn.close()
            self._conn = None
            self._read(0)

    def poll(self) -> int | None:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = 1.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(f"training job {self.pid}", timeout or 0)
            if self._conn is not None:
                self._read(min(left, 1.0))  # wakes as soon as the server sends the exit code
            else:
                time.sleep(min(left, 0.1))
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Server:
    """This process's server: a fresh ``python -m tools.job_server`` and its socket."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="fab-jobs-")  # short: a socket path has at most 107 bytes
        self.path = os.path.join(self.dir, "jobs.sock")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "tools.job_server", self.path], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.owner = os.getpid()

    def usable(self) -> bool:
        return self.owner == os.getpid() and self.proc.poll() is None

    def connect(self) -> socket.socket:
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise OSError(f"the job fork server did not start (exit code {self.proc.poll()})")
            time.sleep(0.01)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        conn.connect(self.path)
        return conn

    def close(self) -> None:
        if self.owner == os.getpid() and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


_SERVER: _Server | None = None
_LOCK = threading.Lock()


def _server() -> _Server:
    global _SERVER
    with _LOCK:
        if _SERVER is None or not _SERVER.usable():
            if _SERVER is not None and _SERVER.owner == os.getpid():
                _SERVER.close()
            _SERVER = _Server()
            atexit.register(_SERVER.close)
        return _SERVER


def launch(config: Path, log_path: Path, env: dict[str, str]) -> ForkedJob:
    """Fork a job for ``config`` from this process's server (started on first use).

    Raises:
        OSError: the server could not be started or reached (the caller starts a subprocess).
    """
    from tools.job_process import PARENT_STARTED_ENV, start_time

    env = {**env, PARENT_STARTED_ENV: start_time(os.getpid()) or ""}
    conn = _server().connect()
    with open(log_path, "a") as logf:
        request = json.dumps({"config": str(config), "env": env, "cwd": os.getcwd()}).encode()
        socket.send_fds(conn, [request], [logf.fileno()])
    reply = conn.recv(64)
    if not reply.startswith(b"pid "):
        conn.close()
        raise OSError("the job fork server did not fork the job")
    return ForkedJob(int(reply.split()[1]), conn)


if __name__ == "__main__":
    serve(sys.argv[1])
