"""Calibrate a task: train every algorithm on its oracle-prepared data and store the reference table.

The table (``evals.reference``) is the answer key of the training phase: S3's choice and S4's run are
judged against what each algorithm measurably reaches on the task's clean data, with exactly the
RunConfig the training tools (``tools.federate.launch_training``) build for the same settings. Only
missing rows are computed, and the table is saved after each algorithm, so an interrupted calibration
loses at most one algorithm and a later call (or :func:`ensure_reference`) finishes it.
"""

from __future__ import annotations

import hashlib
import logging
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from evals.reference import (
    AlgorithmOutcome,
    Baselines,
    ReferenceSettings,
    ReferenceTable,
    load_reference,
    reference_path,
    save_reference,
)

log = logging.getLogger(__name__)

#: progress(event, algorithm, index, total): event is "start", "done" or "failed"; index counts from 1.
Progress = Callable[[str, str, int, int], None]


def run_config(settings: ReferenceSettings, folders: list[Path], algorithm: str, out_dir: Path):
    """The RunConfig the training tools launch for ``algorithm`` with ``settings`` (paper defaults)."""
    from fedagentbench.training import declare
    from fl_core.config import RunConfig

    fixed = settings.model_dump()
    return declare(RunConfig(**{**fixed, "data_dirs": tuple(str(f) for f in folders), "algorithm": algorithm,
                                "algorithm_params": {}, "engine": "inprocess", "num_threads": 1,
                                "out_dir": str(out_dir), "resume": False, "progress": False}))


def train_outcome(name: str, cfg, data) -> AlgorithmOutcome:
    """Train ``name`` once and return its outcome; an exception becomes the row's ``error``."""
    from algorithms.registry import get_algorithm
    from fl_core.engine import Engine

    t = time.perf_counter()
    try:
        r = Engine(cfg, data, get_algorithm(name)).run(reports=False)  # the table keeps the figures; the run folder is discarded
    except Exception as exc:  # one broken algorithm must not hide the others
        log.exception("%s failed", name)
        return AlgorithmOutcome(algorithm=name, error=f"{type(exc).__name__}: {str(exc)[:300]}",
                                seconds=time.perf_counter() - t)
    per_site = {c.name: float(m["balanced_accuracy"]) for c, m in zip(data.clients, r.primary_metrics["clients"])}
    return AlgorithmOutcome(
        algorithm=name, primary_model="global" if r.primary_metrics is r.global_metrics else "personal",
        global_bacc=float(r.global_metrics["client_mean"]["balanced_accuracy"]),
        personal_bacc=float(r.personal_metrics["client_mean"]["balanced_accuracy"]) if r.has_personal else None,
        per_site=per_site, seconds=time.perf_counter() - t)


def baselines(cfg, data) -> Baselines:
    """Local-only (mean and best site) and pooled balanced accuracy on the same splits and model."""
    from fl_core.baselines import run_baselines

    b = run_baselines(cfg, data)
    best = b["local"]["best_client"]
    return Baselines(local_mean=float(b["local"]["client_mean"]["balanced_accuracy"]),
                     local_best=float(best["balanced_accuracy"]), local_best_site=str(best["client"]),
                     pooled=float(b["pooled"]["client_mean"]["balanced_accuracy"]))


@contextmanager
def writable(folder: Path) -> Iterator[None]:
    """Let the owner write in ``folder`` (a read-only built env's ``key/``) for the block, then restore it."""
    if not folder.exists():
        with writable(folder.parent):
            folder.mkdir(parents=True, exist_ok=True)
    mode = folder.stat().st_mode
    if not mode & stat.S_IWUSR:
        folder.chmod(mode | stat.S_IWUSR)
    try:
        yield
    finally:
        if not mode & stat.S_IWUSR:
            folder.chmod(mode)


def save_table(env_dir: Path, table: ReferenceTable) -> None:
    """Write ``table`` into ``env_dir``'s ``key/reference/``, read-only ``key/`` or not (its mode is kept)."""
    key = Path(env_dir) / "key"
    with writable(key), writable(reference_path(env_dir, table.task_id, table.settings).parent):
        save_reference(env_dir, table)


def calibrate(env_dir: str | Path, task_id: str, settings: ReferenceSettings, algorithms: list[str] | None = None,
              progress: Progress | None = None) -> ReferenceTable:
    """The task's reference table for ``settings``, with a row for each of ``algorithms`` (default: all).

    Rows already in the cached table are kept, not retrained; the others are trained one by one and the
    table is written after each. A failing algorithm gets a row with its error. Processes calibrating
    the same table (evals sharing an ``--env-cache``, a scorer filling a missing row) take turns under
    a lock, so a row is trained once and no process overwrites another's rows.

    Raises:
        FileNotFoundError: ``env_dir`` is not a built environment.
        ValueError: an unknown task or algorithm (the message lists the known ones).
    """
    from algorithms.registry import list_algorithms
    from envs.build import load

    env_dir = Path(env_dir)
    env = load(env_dir)
    if task_id not in env.key.tasks:
        raise ValueError(f"unknown task {task_id!r}; this environment has: {', '.join(sorted(env.key.tasks))}")
    known = list_algorithms()
    names = list(dict.fromkeys(algorithms or known))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; choose from: {', '.join(known)}")
    with FileLock(_lock_path(env_dir, task_id, settings)):  # another process may be computing it now
        return _calibrate(env_dir, env, task_id, settings, names, progress)


def _lock_path(env_dir: Path, task_id: str, settings: ReferenceSettings) -> str:
    """A lock file per table, in the temp folder: the built env's ``key/`` stays read-only meanwhile."""
    name = hashlib.sha256(str(reference_path(env_dir.resolve(), task_id, settings)).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"fedagentbench-calibrate-{name}.lock")


def _calibrate(env_dir: Path, env, task_id: str, settings: ReferenceSettings, names: list[str],
               progress: Progress | None) -> ReferenceTable:
    from envs.oracle import prepare_task
    from fl_core.engine import load_data

    table = load_reference(env_dir, task_id, settings)
    missing = [n for n in names if table is None or n not in table.rows]
    if table is not None and table.baselines is not None and not missing:
        return table
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        folders = prepare_task(env, task_id, Path(tmp) / "prepared", size=settings.image_size)
        cfg = run_config(settings, folders, "fedavg", Path(tmp) / "run")
        data = load_data(cfg)
        if table is None:
            table = ReferenceTable(modality=env.key.modality, env_seed=env.key.seed, scale=env.key.scale,
                                   task_id=task_id, settings=settings, sites=[c.name for c in data.clients],
                                   test_sizes=[len(c.test) for c in data.clients])
        if table.baselines is None:
            table.baselines = baselines(cfg, data)
            table.seconds += time.perf_counter() - t0
            save_table(env_dir, table)
        for i, name in enumerate(missing, 1):
            if progress:
                progress("start", name, i, len(missing))
            t = time.perf_counter()
            row = train_outcome(name, run_config(settings, folders, name, Path(tmp) / "runs" / name), data)
            table.rows[name] = row
            table.seconds += time.perf_counter() - t
            save_table(env_dir, table)
            if progress:
                progress("failed" if row.error else "done", name, i, len(missing))
    return table


def ensure_reference(env_dir: str | Path, task_id: str, settings: ReferenceSettings,
                     algorithms: list[str] | None = None, progress: Progress | None = None) -> ReferenceTable:
    """The table with at least ``algorithms`` measured (computes only the missing ones).

    The scorer calls it when a trial chose an algorithm the table lacks.
    """
    return calibrate(env_dir, task_id, settings, algorithms, progress)
