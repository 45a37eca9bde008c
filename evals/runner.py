"""The benchmark runner: tasks x guidance styles x models x trials, in parallel processes, resumable.

Environments are built first (once per modality, seed and scale, into ``<out>/envs``), then every
task-trial not already in ``<out>/results.jsonl`` runs in a worker process (spawned, so each starts
clean and one crash cannot corrupt another's state). Rows are appended as trials finish; a rerun of
the same command skips what is done. The summaries are rewritten from the whole file at the end.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from evals.models import ModelEntry
from evals.results import append_rows, done_trials, load_rows
from evals.suite import Suite
from evals.trial import TrialSpec, ensure_env, run_trial

log = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """One ``fedagentbench eval`` invocation."""

    suite: Suite
    models: list[ModelEntry]
    out: Path
    trials: int = 1
    guidance: str = "both"
    jobs: int = 2
    scale: float | None = None
    only: set[str] | None = None
    record: Path | None = None
    replay: Path | None = None
    env_cache: Path | None = None
    keep_envs: bool = False
    reference_algorithms: list[str] | None = None  # overrides the suite's (None: the suite's, else all)


@dataclass
class EvalResult:
    ran: int = 0
    skipped: int = 0
    harness_errors: int = 0
    replay_misses: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)


def plan(cfg: EvalConfig) -> list[TrialSpec]:
    """Every task-trial of the run, in a stable order (model, task, guidance, trial)."""
    if cfg.record and cfg.replay:
        raise ValueError("use --record or --replay, not both")
    if cfg.replay and not cfg.replay.is_dir():
        raise FileNotFoundError(f"--replay {cfg.replay}: no such folder; record one first with --record DIR")
    if cfg.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {cfg.trials}")
    cache = cfg.env_cache or cfg.out / "envs"
    entries = cfg.suite.entries(cfg.guidance, cfg.scale, cfg.only)
    return [TrialSpec(suite=cfg.suite.name, entry=e, trial=k, model=m, train=cfg.suite.train.model_dump(),
                      thresholds=cfg.suite.judged_by, env_cache=cache, out=cfg.out, record=cfg.record,
                      replay=cfg.replay, keep_env=cfg.keep_envs)
            for m in cfg.models for e in entries for k in range(cfg.trials)]


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    die_with_parent()


def die_with_parent() -> None:
    """Make this worker end, with any local LLM server it started, when the runner dies.

    Why: a runner killed by a signal (SIGKILL, an OOM kill, a closed terminal) cannot shut its pool
    down, and spawned workers would go on with their task-trials as orphans, each keeping a
    llama-server busy on the same two cores (seen here). Linux only (PR_SET_PDEATHSIG); workers are
    spawned from the runner's main thread, which lives as long as the runner.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    signal.signal(signal.SIGTERM, _terminate)
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the runner died before the prctl took effect
        _terminate(signal.SIGTERM, None)


def _terminate(signum: int, frame: object) -> None:
    server = sys.modules.get("graphs.local_llm.server")  # not imported: no server to stop (and no
    if server is not None:  # slow import of the graph stack while the machine is busy)
        server.stop_all()
    os._exit(128 + signum)


def _verdicts(rows: list[dict[str, Any]]) -> str:
    mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[yellow]?[/]"}
    return " ".join(f"{r['role']}{mark[r['passed']]}" for r in rows)


def calibrate_tasks(cfg: EvalConfig, todo: list[TrialSpec], pool: ProcessPoolExecutor, progress: Progress) -> None:
    """Compute the reference tables the trials will be scored against (only missing rows), before any trial.

    One table per (built environment, task) with the suite's training settings, so every trial and
    every model is judged against the same numbers; the trials' private copies carry them along.
    """
    from envs.calibrate import calibrate
    from evals.reference import reference_settings
    from evals.trial import env_folder

    settings = reference_settings(cfg.suite.train.model_dump())
    algorithms = cfg.reference_algorithms or cfg.suite.reference_algorithms
    tasks = sorted({(s.entry.env_key, s.entry.task_id) for s in todo})
    if not tasks:
        return
    bar = progress.add_task("reference tables", total=len(tasks))
    futures = [pool.submit(calibrate, env_folder(todo[0].env_cache, *key), task, settings, algorithms)
               for key, task in tasks]
    for fut in as_completed(futures):
        fut.result()  # an unknown algorithm or task is a bad suite: stop with its message
        progress.advance(bar)


def run_eval(cfg: EvalConfig, console: Console | None = None) -> EvalResult:
    """Run what is not yet in results.jsonl; write rows as trials finish, then the summaries."""
    from evals.tables import write_summaries

    console = console or Console()
    specs = plan(cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)
    results = cfg.out / "results.jsonl"
    done = done_trials(load_rows(results))
    todo = [s for s in specs if s.ident not in done]
    res = EvalResult(skipped=len(specs) - len(todo))
    if res.skipped:
        console.print(f"resuming: {res.skipped} task-trial(s) already in {results}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # spawned workers inherit it; 2 cores are shared
    envs = sorted({s.entry.env_key for s in todo})
    jobs = max(1, min(cfg.jobs, len(todo) or 1))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker) as pool, \
            Progress(*columns, console=console) as progress:
        if envs:
            bar = progress.add_task("building environments", total=len(envs))
            cache = todo[0].env_cache
            for fut in as_completed([pool.submit(ensure_env, cache, *k) for k in envs]):
                fut.result()  # a build error is a bug or a bad suite: stop with its message
                progress.advance(bar)
        calibrate_tasks(cfg, todo, pool, progress)
        bar = progress.add_task("task-trials", total=len(todo))
        futures: dict[Future, TrialSpec] = {pool.submit(run_trial, s): s for s in todo}
        try:
            for fut in as_completed(futures):
                spec, rows = futures[fut], fut.result()
                append_rows(results, rows)
                res.ran += 1
                res.harness_errors += any(r["failure_category"] == "harness_error" for r in rows)
                res.replay_misses += any(r["failure_category"] == "replay_miss" for r in rows)
                progress.console.print(f"{spec.model.name} {spec.entry.task_id} {spec.entry.guidance} "
                                       f"t{spec.trial}: {_verdicts(rows)}")
                progress.advance(bar)
        except BrokenProcessPool as exc:
            raise RuntimeError(f"a worker process died ({exc}); {res.ran} task-trial(s) were saved. Rerun the "
                               "same command to resume (lower --jobs if memory ran out)") from None
    res.rows = load_rows(results)
    write_summaries(cfg.out, res.rows, title=f"FedAgentBench ({cfg.suite.name} suite)")
    return res
