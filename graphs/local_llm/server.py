"""Start, health-check and stop ``llama-server`` for a local model; one per process, stopped on exit.

The factory talks to the server over the OpenAI API like any vLLM or Ollama server; this module only
owns the process. A server is bound to 127.0.0.1 on a free port, its output goes to a log file, and it
is stopped by its pid at interpreter exit (atexit) and, on Linux, also when its parent dies
(PR_SET_PDEATHSIG, when started from the main thread), so a killed run leaves no orphan behind.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from graphs.local_llm.catalog import LocalModel, get_model
from graphs.local_llm.paths import cache_dir, server_binary
from graphs.local_llm.weights import is_ready, weights_path

log = logging.getLogger(__name__)

#: URL (``http://127.0.0.1:PORT`` or ``.../v1``) of a server already running; ``local`` then reuses it.
URL_ENV = "FEDAGENTBENCH_LLM_URL"
TEMPLATE = Path(__file__).with_name("chat_template.jinja")
#: Parallel slots: the client phases fan out (one C1/C2/C3 agent per site, in threads), and with one
#: slot their requests queued for minutes behind each other and some failed with connection errors
#: (seen on an 8-site environment). Continuous batching decodes several slots for about the cost
#: of one on a CPU, so a few slots serve the fan-out.
SLOTS = 4
#: Context window per slot: role prompt + tool schemas + a few tool results fit with room to spare.
SLOT_CONTEXT = 8192
START_TIMEOUT_S = 180.0


class ServerError(RuntimeError):
    """The local server is not set up, or did not become healthy."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(model: LocalModel, port: int, *, binary: Path | None = None, slots: int = SLOTS,
                   threads: int | None = None) -> list[str]:
    """The llama-server command line: our chat template, ``slots`` parallel slots, loopback only."""
    cmd = [str(binary or server_binary()), "--model", str(weights_path(model)), "--alias", model.name,
           "--host", "127.0.0.1", "--port", str(port), "--ctx-size", str(SLOT_CONTEXT * slots),
           "--parallel", str(slots), "--threads-http", str(2 * slots + 2),
           "--jinja", "--chat-template-file", str(TEMPLATE), "--no-webui"]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


def check_setup(model: LocalModel) -> None:
    """ServerError with the command to run when the weights or the binary are missing."""
    missing = []
    if not server_binary().is_file():
        missing.append(f"llama-server ({server_binary()})")
    if not is_ready(model):
        missing.append(f"the {model.name} weights ({weights_path(model)})")
    if missing:
        raise ServerError(f"the local LLM is not set up: missing {' and '.join(missing)}; run "
                          f"`fedagentbench llm setup --model {model.name}` (or set {URL_ENV} to a running server)")


def health(url: str, timeout: float = 2.0) -> bool:
    """True when ``{url}/health`` answers 200 (the model is loaded)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A pre-exec hook that makes the child get SIGTERM when its parent dies (Linux), or None.

    Only from the main thread: the kernel sends the signal when the *thread* that forked exits, and
    LangGraph runs nodes in worker threads that come and go. prctl is resolved here, in the parent, so
    the child runs nothing but one libc call between fork and exec.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl

    def hook() -> None:  # pragma: no cover - runs in the child
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return hook


@dataclass
class LocalServer:
    """One llama-server process serving ``model`` on ``port``."""

    model: LocalModel
    port: int = field(default_factory=free_port)
    threads: int | None = None
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        """Base URL without ``/v1`` (``/health`` lives here)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    def start(self, timeout: float = START_TIMEOUT_S) -> Self:
        """Launch the process and wait until /health answers; ServerError (with the log's tail) if not."""
        check_setup(self.model)
        logs = cache_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"llama-server-{self.model.name}-{self.port}.log"
        cmd = server_command(self.model, self.port, threads=self.threads)
        log.info("starting %s", " ".join(cmd))
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_pdeathsig_hook())  # noqa: PLW1509 - see the hook
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"llama-server exited with code {self.process.returncode}: {self.log_tail()}")
            if health(self.url):
                log.info("llama-server (pid %d) ready at %s", self.process.pid, self.url)
                return self
            time.sleep(0.25)
        self.stop()
        raise ServerError(f"llama-server did not become healthy in {timeout:.0f} s: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process by its pid: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def log_tail(self, chars: int = 1500) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-chars:]

    def rss_bytes(self) -> int | None:
        """Resident memory of the server process (Linux), for reports."""
        if not self.process:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_servers: dict[str, LocalServer] = {}
_lock = threading.Lock()


def stop_all() -> None:
    """Stop every server this process started (also run at interpreter exit)."""
    for server in list(_servers.values()):
        server.stop()
    _servers.clear()


atexit.register(stop_all)


def ensure_server(name: str | None = None) -> str:
    """The OpenAI base URL (``.../v1``) of a server for ``name``: $FEDAGENTBENCH_LLM_URL if set,
    else this process's own server, started on first use and stopped when the process exits."""
    reuse = os.environ.get(URL_ENV, "").strip()
    if reuse:
        base = reuse.rstrip("/").removesuffix("/v1")
        if not health(base, timeout=5.0):
            raise ServerError(f"{URL_ENV}={reuse} does not answer /health; start it with `fedagentbench llm serve` "
                              f"or unset {URL_ENV}")
        return base + "/v1"
    model = get_model(name)
    with _lock:
        server = _servers.get(model.name)
        if server is None or server.process is None or server.process.poll() is not None:
            server = LocalServer(model).start()
            _servers[model.name] = server
    return server.openai_url
