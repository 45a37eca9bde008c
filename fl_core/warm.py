"""What a warm parent process (a fork server) does before and while it forks training processes.

A fork server (:mod:`fl_core.flower.zygote`) exists so that a per-message or per-job process does not
pay for its imports. Importing a module is not all of it: torch imports ``torch._dynamo`` (with
sympy) the first time any optimizer is constructed, because ``Optimizer.add_param_group`` is wrapped
in ``torch._disable_dynamo``, which imports it on first call. Measured with torch 2.14.1 on this
machine's CPU: 1.0 s for the first ``torch.optim.Adam`` after ``import torch``, 0.1 ms for the
second. A child forked before that paid it on every round's first optimizer. The learning curve's
matplotlib (about 0.4 s) is the same kind of one-off cost, paid at the end of every run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

__all__ = ["listen", "serve_while_parent", "warm_optimizers", "warm_plotting"]


def listen(path: str) -> socket.socket:
    """Bind the server's socket first, before its slow imports, so that an early request waits in
    the backlog instead of failing for want of the file."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(16)
    return listener


def serve_while_parent(listener: socket.socket, parent: int,
                       handle: Callable[[socket.socket, socket.socket], None]) -> None:
    """Hand each connection to ``handle(conn, listener)`` until ``parent`` is no longer this
    process's parent (it exited: the server must not outlive what it serves)."""
    listener.settimeout(1.0)
    while os.getppid() == parent:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        conn.settimeout(None)
        handle(conn, listener)
    listener.close()


def warm_optimizers() -> None:
    """Construct (and drop) one optimizer, so that a process forked afterwards has torch's lazy
    optimizer imports already loaded."""
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def warm_plotting() -> None:
    """Import matplotlib with the file-only backend the report's learning curve uses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot
