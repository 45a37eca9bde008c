"""A fork server for Flower's app processes: one warm parent, one fresh child per app process.

Why: Flower starts a new ``flwr-clientapp`` process for every message and a new ``flwr-serverapp``
process for every run, and importing torch, timm, flwr and the algorithms takes 3-10 s of the 2
shared cores here: most of the fixed cost of a round, and of a run's start. The SuperNode and
SuperLink wrappers (:mod:`fl_core.flower.node_main`, :mod:`fl_core.flower.link_main`) start this
server once (:func:`install`); it imports everything and then waits. A tiny stand-in of the same
name, first on the SuperExec's ``PATH``, passes its arguments and its stdin/stdout/stderr to the
server, which forks a child that runs Flower's own entry point with them, and hands the child's
exit code back. Each message (or run) still runs in its own process, with nothing carried over from
the previous one (a client's state comes from the context Flower keeps, the server's from its run
folder, exactly as without the server). A forked ServerApp stays in the SuperLink's process group,
so stopping the SuperLink stops it too.
"""

from __future__ import annotations

import atexit
import importlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["APPS", "install", "serve", "start", "write_stand_in", "zygote_env"]

log = logging.getLogger(__name__)

_MAX_REQUEST = 1 << 20


@dataclass(frozen=True)
class App:
    """One Flower app command the server can stand in for."""

    warm: tuple[str, ...]  # modules the server imports before it forks
    entry: str  # Flower's console-script entry point, "module:function"
    plots: bool = False  # writes the learning curve (matplotlib) at the end


#: stand-in command -> what its server imports and what the child runs (flwr 1.42 entry points)
APPS: dict[str, App] = {
    "flwr-clientapp": App(("fl_core.flower.client_app",), "flwr.supernode.cli:flwr_clientapp"),
    "flwr-serverapp": App(("fl_core.flower.server_app",), "flwr.superlink.cli:flwr_serverapp", plots=True),
}


def zygote_env(command: str) -> str:
    """The environment variable naming the socket of ``command``'s server (one per command)."""
    return "FEDAGENTBENCH_" + command.upper().replace("-", "_") + "_SERVER"

_STAND_IN = """#!{python} -IS
# {command}, run by the fork server of fl_core.flower.zygote (see there)
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(os.environ["{env}"])
request = json.dumps({{"argv": sys.argv, "cwd": os.getcwd(), "env": dict(os.environ)}}).encode()
socket.send_fds(s, [request], [0, 1, 2])
reply = s.recv(64)
sys.exit(int(reply) if reply else 1)
"""


def write_stand_in(folder: Path, command: str = "flwr-clientapp") -> Path:
    """Write the stand-in for ``command`` into ``folder`` (to put first on ``PATH``)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / command
    target.write_text(_STAND_IN.format(python=sys.executable, env=zygote_env(command), command=command))
    target.chmod(0o755)
    return target


def _child(command: str, request: dict, fds: list[int]) -> None:
    """In the forked child: become ``command`` with the stand-in's arguments and streams."""
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = [command, *request["argv"][1:]]
    code = 0
    try:
        module, function = APPS[command].entry.split(":")
        getattr(importlib.import_module(module), function)()
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


def _handle(command: str, conn: socket.socket, listener: socket.socket) -> None:
    msg, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
    request = json.loads(msg)
    pid = os.fork()
    if pid == 0:
        listener.close()
        conn.close()
        _child(command, request, fds)
    for fd in fds:
        os.close(fd)

    def reap() -> None:
        _, status = os.waitpid(pid, 0)
        try:
            conn.send(str(os.waitstatus_to_exitcode(status)).encode())
        finally:
            conn.close()

    threading.Thread(target=reap, daemon=True).start()


def serve(path: str, parent: int, command: str = "flwr-clientapp") -> None:
    """Import ``command``'s dependencies, then fork a child per request until ``parent`` exits."""
    from fl_core.warm import listen, serve_while_parent, warm_optimizers, warm_plotting

    listener = listen(path)
    app = APPS[command]
    for module in app.warm:  # the warm imports this server exists for
        importlib.import_module(module)
    warm_optimizers()  # else every child imports torch._dynamo again at its first optimizer
    if app.plots:
        warm_plotting()
    serve_while_parent(listener, parent, lambda conn, lst: _handle(command, conn, lst))


def start(path: str, command: str = "flwr-clientapp") -> int:
    """Fork the server (it stays in the caller's process group); returns its pid."""
    parent = os.getpid()
    Path(path).unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            serve(path, parent, command)
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid


def install(folder: Path, command: str) -> int:
    """Start ``command``'s server and put its stand-in (written into ``folder/bin``) first on this
    process's ``PATH``, so that the SuperExec this process starts afterwards finds it; returns the
    server's pid."""
    if command not in APPS:
        raise ValueError(f"no fork server for {command!r}; known: {sorted(APPS)}")
    write_stand_in(Path(folder) / "bin", command)
    sock_dir = tempfile.mkdtemp(prefix="fab-zyg-")  # short: a socket path has at most 107 bytes
    atexit.register(shutil.rmtree, sock_dir, True)
    sock = os.path.join(sock_dir, "app.sock")
    pid = start(sock, command)
    os.environ[zygote_env(command)] = sock
    os.environ["PATH"] = os.pathsep.join([str(Path(folder) / "bin"), os.environ.get("PATH", "")])
    return pid
