"""A fork server for a SuperNode's ClientApp processes: one warm parent, one fresh child per message.

Why: Flower starts a new ``flwr-clientapp`` process for every message, and importing torch, timm,
flwr and the algorithms takes 3-10 s of the 2 shared cores here: most of the fixed cost of a round.
The SuperNode wrapper (:mod:`fl_core.flower.node_main`) starts this server once; it imports
everything and then waits. A tiny ``flwr-clientapp`` stand-in, first on the SuperExec's ``PATH``,
passes its arguments and its stdin/stdout/stderr to the server, which forks a child that runs
Flower's own ``flwr-clientapp`` entry point with them, and hands the child's exit code back. Each
message still runs in its own process, with nothing carried over from the previous one (the
client's state comes from the context Flower keeps, exactly as without the server).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path

__all__ = ["ZYGOTE_ENV", "serve", "start", "write_stand_in"]

log = logging.getLogger(__name__)

ZYGOTE_ENV = "FEDAGENTBENCH_CLIENTAPP_SERVER"
_MAX_REQUEST = 1 << 20

_STAND_IN = """#!{python} -IS
# flwr-clientapp, run by the fork server of fl_core.flower.zygote (see there)
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(os.environ["{env}"])
request = json.dumps({{"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
socket.send_fds(s, [request], [0, 1, 2])
reply = s.recv(64)
sys.exit(int(reply) if reply else 1)
"""


def write_stand_in(folder: Path) -> Path:
    """Write the ``flwr-clientapp`` stand-in into ``folder`` (to put first on ``PATH``)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "flwr-clientapp"
    target.write_text(_STAND_IN.format(python=sys.executable, env=ZYGOTE_ENV))
    target.chmod(0o755)
    return target


def _child(request: dict, fds: list[int]) -> None:
    """In the forked child: become ``flwr-clientapp`` with the stand-in's arguments and streams."""
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["flwr-clientapp", *request["argv"][1:]]
    code = 0
    try:
        from flwr.supernode.cli.flwr_clientapp import flwr_clientapp

        flwr_clientapp()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - report any failure as the process's exit code
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _handle(conn: socket.socket, listener: socket.socket) -> None:
    msg, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
    request = json.loads(msg)
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        _child(request, fds)
    for fd in fds:
        os.close(fd)

    def reap() -> None:
        _, status = os.waitpid(pid, 0)
        try:
            conn.send(str(os.waitstatus_to_exitcode(status)).encode())
        finally:
            conn.close()

    threading.Thread(target=reap, daemon=True).start()


def serve(path: str, parent: int) -> None:
    """Import the ClientApp's dependencies, then fork a child per request until ``parent`` exits."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)  # first, so that a stand-in that comes early waits in the backlog
    listener.listen(16)
    import fl_core.flower.client_app  # noqa: F401 - the warm imports this server exists for

    listener.settimeout(1.0)
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        _handle(conn, listener)
    listener.close()


def start(path: str) -> int:
    """Fork the server (it stays in the caller's process group); returns its pid."""
    parent = os.getpid()
    Path(path).unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            serve(path, parent)
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid
