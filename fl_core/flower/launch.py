"""Run a configuration on Flower: start the processes, submit the app with ``flwr run``, stop them all.

``flower-deployment``: a SuperLink and one SuperNode per site on 127.0.0.1, real processes, each
node given only its own site's folder through its node config. ``flower-simulation``: a SuperLink
with Flower's simulation runtime, which runs one virtual node per site in its own worker processes.
Either way the app is this package's ServerApp and ClientApp (:mod:`fl_core.flower.server_app`,
:mod:`fl_core.flower.client_app`), the run folder gets the same report files as the in-process
engine, and every process started here is stopped on return, on error and on Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Self

from algorithms.api import FLAlgorithm
from fl_core.config import RunConfig
from fl_core.engine import _check_matches
from fl_core.flower.options import FlowerOptions, write_spec
from fl_core.flower.processes import LOCALHOST, Processes, Started, free_port, venv_env, wait_http
from fl_core.flower.server_app import ERROR_FILE, PID_FILE
from fl_core.flower.site import algorithm_ref
from fl_core.flower.watchdog import PARENT_ENV
from fl_core.pids import pid_alive
from fl_core.result import RunResult

__all__ = ["Federation", "node_command", "run_flower", "superlink_command", "write_app"]

log = logging.getLogger(__name__)

_APP_TOML = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "fedagentbench-fl"
version = "1.0.0"
description = "FedAgentBench's algorithms on Flower (fl_core.flower)"
dependencies = []

[tool.flwr.app]
publisher = "fedagentbench"

[tool.flwr.app.components]
serverapp = "fl_core.flower.server_app:app"
clientapp = "fl_core.flower.client_app:app"

[tool.flwr.app.config]
spec = ""
site-dirs = "[]"
state-root = ""
"""
_SHIM = '"""FedAgentBench\'s Flower app: the ServerApp and ClientApp live in fl_core.flower."""\n'


def write_app(folder: Path) -> Path:
    """The Flower app folder ``flwr run`` packs: a pyproject naming this package's two apps.

    The code itself is imported from the installed ``fl_core`` on both sides (a SuperNode runs the
    hospital's installed copy; nothing executable travels in the FAB beyond this stub).
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(_APP_TOML)
    (folder / "fedagentbench_fl.py").write_text(_SHIM)
    return folder


def superlink_command(port: int, simulation: bool = False, database: str = ":flwr-in-memory:",
                      fork_server: str | None = None) -> list[str]:
    """``flower-superlink`` for a local run: insecure (local testing only), no ``uv sync`` per run.

    ``fork_server``: a folder for the ServerApp fork server's stand-in (a deployment's SuperLink
    only; a simulation has no ``flwr-serverapp`` process to fork).
    """
    ours = ["--fork-server", fork_server] if fork_server and not simulation else []
    cmd = [sys.executable, "-m", "fl_core.flower.link_main", *ours, "--", "--insecure", "--isolation", "subprocess",
           "--host", LOCALHOST, "--port", str(port), "--disable-runtime-dependency-installation"]
    if database != ":flwr-in-memory:":
        cmd += ["--database", database]
    return cmd + (["--simulation"] if simulation else [])


def node_command(superlink_port: int, runtime_port: int, site_dir: str, site_index: int, state_dir: str,
                 poll_interval: float, fork_server: bool = True) -> list[str]:
    """A SuperNode for one site (insecure: local testing only) that sees only that site's folder."""
    node_config = f'site-dir="{site_dir}" site-index={site_index} state-dir="{state_dir}"'
    ours = ["--poll-interval", str(poll_interval)]
    if fork_server:
        ours += ["--fork-server", str(Path(state_dir) / "fork-server")]
    return [sys.executable, "-m", "fl_core.flower.node_main", *ours, "--",
            "--insecure", "--superlink", f"{LOCALHOST}:{superlink_port}", "--host", LOCALHOST,
            "--port", str(runtime_port), "--node-config", node_config]


def _flwr_home(folder: Path, port: int, num_supernodes: int | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ['[superlink]', 'default = "fedagentbench"', '', '[superlink.fedagentbench]',
             f'address = "{LOCALHOST}:{port}"', 'insecure = true']
    if num_supernodes is not None:
        lines += [f'options.num-supernodes = {num_supernodes}']
    (folder / "config.toml").write_text("\n".join(lines) + "\n")
    return folder


def _result(cfg: RunConfig) -> RunResult:
    out = Path(cfg.out_dir)
    summary = json.loads((out / "summary.json").read_text())
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines() if line]

    def nan(obj):  # summary.json writes NaN as null
        if obj is None:
            return math.nan
        if isinstance(obj, dict):
            return {k: nan(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [nan(v) for v in obj]
        return obj

    return RunResult(
        config=cfg, classes=tuple(summary["classes"]), client_names=tuple(summary["client_names"]),
        rounds_completed=summary["rounds_completed"], stopped_early=summary["stopped_early"],
        best_round=summary["best_round"], primary_model=summary["primary_model"],
        global_metrics=nan(summary["global"]), personal_metrics=nan(summary["personal"]),
        history=nan(history), train_images=summary["train_images"], train_seconds=summary["train_seconds"],
        wall_seconds=summary["wall_seconds"], resumed_from=summary["resumed_from"], out_dir=cfg.out_dir,
    )


#: Seconds ``flwr run`` is given to end by itself after the ServerApp process is gone without a summary.
SERVERAPP_GONE_GRACE = 3.0


def _watch(run: Started, nodes: dict[str, Started], out: Path, since: float) -> bool:
    """Wait for ``flwr run`` to end, logging (once) each SuperNode that exits meanwhile.

    Returns False when the run's ServerApp process (pid file newer than ``since``) ended without
    writing a fresh summary and ``flwr run`` was still waiting: the SuperLink would notice only when
    the run's heartbeat times out, about a minute later.
    """
    gone: set[str] = set()
    dead_since: float | None = None
    polls = 0
    while run.popen.poll() is None:
        polls += 1
        for name, node in nodes.items():
            if name not in gone and node.popen.poll() is not None:
                gone.add(name)
                log.warning("the SuperNode of site %r exited with code %s (log: %s)", name,
                            node.popen.returncode, node.log_path)
        if polls % 5 == 0 and _serverapp_gone(out, since):  # a ``ps`` a second, not five
            dead_since = dead_since or time.monotonic()
            if time.monotonic() - dead_since > SERVERAPP_GONE_GRACE:
                return False
        time.sleep(0.2)
    return True


def _finished(out: Path, since: float) -> bool:
    """Whether the run folder holds a summary written at or after ``since`` (this run's, not an earlier one's)."""
    summary = out / "summary.json"
    return summary.exists() and summary.stat().st_mtime >= since


def _serverapp_gone(out: Path, since: float) -> bool:
    """Whether this run's ServerApp process has exited without a summary newer than ``since``."""
    pid_file = out / PID_FILE
    try:
        if pid_file.stat().st_mtime < since:
            return False
        pid = int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        return False
    return not _finished(out, since) and pid > 0 and not pid_alive(pid)


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """While running, SIGTERM raises SystemExit, so that the ``with Processes`` block still stops
    every process (a training job is stopped with SIGTERM; Python's default would skip the cleanup)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Federation:
    """A SuperLink (and, for a deployment, one SuperNode per site) on 127.0.0.1, for one or more runs.

    Use as a context manager: entering starts the processes, leaving stops every one of them
    (success, error or Ctrl-C). Every run given to :meth:`run` must train on ``data_dirs``.

    Args:
        engine: ``"flower-deployment"`` or ``"flower-simulation"``.
        data_dirs: the sites' prepared folders, in federation order.
        work_dir: logs, Flower's home, the app folder and each node's state folder.
        options: timeouts and polling.
        sites: indices of the sites whose SuperNode to start here (default: all). A site left out
            must have its node started elsewhere (``fedagentbench fl node``), or the run reports
            that it never connected.
    """

    def __init__(self, engine: str, data_dirs: tuple[str, ...] | list[str], work_dir: str | Path,
                 options: FlowerOptions | None = None, sites: list[int] | None = None) -> None:
        if engine not in ("flower-simulation", "flower-deployment"):
            raise ValueError(f"a Federation runs the Flower engines, not {engine!r}")
        self.engine, self.simulation = engine, engine == "flower-simulation"
        self.data_dirs = tuple(str(Path(d).resolve()) for d in data_dirs)
        self.work = Path(work_dir).resolve()
        self.options = options or FlowerOptions()
        self.sites = list(range(len(self.data_dirs))) if sites is None else list(sites)
        self.state_root = self.work / "flower_nodes"
        self.nodes: dict[str, Started] = {}
        self.startup_seconds = math.nan
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        t0 = time.perf_counter()
        self.port = free_port()
        home = _flwr_home(self.work / "flower_home", self.port, len(self.data_dirs) if self.simulation else None)
        self.app = write_app(self.work / "flower_app")
        env = venv_env({"FLWR_SUPEREXEC_TASK_POLL_INTERVAL": str(self.options.superexec_poll_interval),
                        "FLWR_HOME": str(home), PARENT_ENV: str(os.getpid())})
        self._stack.enter_context(_sigterm_as_exit())
        self.procs = self._stack.enter_context(Processes(self.work / "flower_logs", env))
        try:
            fork = str(self.work / "flower_link") if self.options.fork_server else None
            self.link = self.procs.start("superlink", superlink_command(self.port, self.simulation, fork_server=fork))
            wait_http(self.port, self.link, self.options.connect_timeout, "the SuperLink")
            if not self.simulation:
                for k in self.sites:
                    d = self.data_dirs[k]
                    name = Path(d).name
                    cmd = node_command(self.port, free_port(), d, k, str(self.state_root / f"{k}-{name}"),
                                       self.options.poll_interval, self.options.fork_server)
                    self.nodes[name] = self.procs.start(f"supernode-{k}-{name}", cmd)
        except BaseException:
            self._stack.close()
            raise
        self.startup_seconds = time.perf_counter() - t0
        log.info("%s: SuperLink and %d SuperNodes started in %.1f s", self.engine, len(self.nodes),
                 self.startup_seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(self, cfg: RunConfig, algorithm: FLAlgorithm) -> RunResult:
        """Submit ``cfg`` with ``flwr run``, wait for it, and return its result.

        Args:
            cfg: the run; its ``data_dirs`` must be this federation's sites.
            algorithm: the instance ``cfg.algorithm`` names; its class path and hyper-parameters go to
                the ServerApp and the ClientApps, which build their own (no name is resolved here).

        Raises:
            RuntimeError: the run failed; the message carries the ServerApp's error (a site that
                never connected, too few replies in a round) and where the logs are.
        """
        if tuple(str(Path(d).resolve()) for d in cfg.data_dirs) != self.data_dirs:
            raise ValueError("the run's data_dirs differ from this federation's sites; start a Federation "
                             "for those folders")
        if cfg.engine != self.engine:
            raise ValueError(f"the run asks for engine {cfg.engine!r}, this federation is {self.engine!r}")
        out = Path(cfg.out_dir).resolve()
        cfg = cfg.replace(out_dir=str(out))
        _check_matches(cfg, algorithm)
        spec = write_spec(cfg, self.options, str(self.state_root), algorithm_ref(algorithm))
        (out / ERROR_FILE).unlink(missing_ok=True)
        (out / PID_FILE).unlink(missing_ok=True)
        run_config = f'spec="{spec}"'
        if self.simulation:
            run_config += f" site-dirs='{json.dumps(list(self.data_dirs))}' state-root=\"{self.state_root}\""
        submit = self.procs.start(f"flwr-run-{out.name}", [str(Path(sys.executable).parent / "flwr"), "run",
                                                          str(self.app), "fedagentbench", "--stream",
                                                          "--run-config", run_config])
        since = spec.stat().st_mtime
        try:
            finished = _watch(submit, self.nodes, out, since)
        finally:
            self.procs.stop(submit)
            self.procs.started.remove(submit)
        error = out / ERROR_FILE
        if error.exists():
            raise RuntimeError(f"the Flower run failed: {error.read_text().splitlines()[0]} "
                               f"(details: {error}; logs: {self.work / 'flower_logs'})")
        if not finished:
            raise RuntimeError(f"the ServerApp process exited without a finished run (killed, or out of "
                               f"memory?):\n{submit.tail()}\nlogs: {self.work / 'flower_logs'}")
        if submit.popen.returncode != 0 or not _finished(out, since):
            raise RuntimeError(f"`flwr run` ended (code {submit.popen.returncode}) without a finished run:\n"
                               f"{submit.tail()}\nlogs: {self.work / 'flower_logs'}")
        return _result(cfg)


def run_flower(cfg: RunConfig, algorithm: FLAlgorithm, options: FlowerOptions | None = None) -> RunResult:
    """Run ``cfg`` under ``cfg.engine`` on 127.0.0.1: start the processes, run, stop them all.

    The processes' logs and the nodes' state go into the run folder (so that a restart with the same
    ``out_dir`` resumes the server's and the clients' checkpoints).
    """
    with Federation(cfg.engine, cfg.data_dirs, cfg.out_dir, options) as fed:
        return fed.run(cfg, algorithm)
