"""One task-trial, run in a worker process: a private copy of the environment, the graph, the scores.

A run writes into its sites' ``work/`` folders, so no two trials share an environment: each
(modality, seed, scale) is built once into a cache folder and copied per task-trial. Whatever
happens inside, the trial returns seven rows (one per role); when the harness, not the model, failed,
the rows are unscored (``passed`` None) and say why.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.models import ModelEntry
from evals.scoring import Thresholds
from evals.suite import TaskEntry

log = logging.getLogger(__name__)

ROLES = ("S1", "C1", "S2", "C2", "C3", "S3", "S4")
PHASE_OF = {"S1": 1, "C1": 1, "S2": 1, "C2": 2, "C3": 3, "S3": 4, "S4": 4}


@dataclass(frozen=True)
class TrialSpec:
    """Everything a worker needs (plain data: it crosses a process boundary)."""

    suite: str
    entry: TaskEntry
    trial: int
    model: ModelEntry
    train: dict[str, Any]
    thresholds: Thresholds
    env_cache: Path
    out: Path
    record: Path | None = None
    replay: Path | None = None
    keep_env: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ident(self) -> tuple[str, str, str, int]:
        return (self.model.name, self.entry.task_id, self.entry.guidance, self.trial)

    @property
    def folder(self) -> Path:
        safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in self.model.name)
        return self.out / "runs" / safe / self.entry.task_id / self.entry.guidance / f"trial{self.trial}"


def env_folder(cache: Path, modality: str, seed: int, scale: float) -> Path:
    return cache / f"{modality}-seed{seed}-scale{scale:g}"


def ensure_env(cache: Path, modality: str, seed: int, scale: float) -> Path:
    """The cached build of (modality, seed, scale), built now if it is missing or stale.

    A lock file beside the folder makes processes that share ``cache`` (two evals with one
    ``--env-cache``, the test workers) wait for one build instead of writing the same folder at once.
    """
    from filelock import FileLock

    from envs.build import build, load

    target = env_folder(cache, modality, seed, scale)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "key" / "answer_key.json").exists():
            key = load(target).key
            if (key.modality, key.seed, key.scale) == (modality, seed, scale):
                return target
        build(modality, target, seed=seed, scale=scale, force=True)
    return target


def private_copy(built: Path, dest: Path) -> Path:
    """A copy of a built environment for one trial (no ``work/`` folders come along)."""
    from envs.readonly import make_writable

    if dest.exists():
        make_writable(dest)
        shutil.rmtree(dest)
    # "*.tmp": a reference table another process is writing into a shared cache (renamed when complete)
    shutil.copytree(built, dest, symlinks=True, ignore=shutil.ignore_patterns("work", "*.tmp"))
    return dest


def chat_model(spec: TrialSpec):
    """The model for this trial, wrapped for recording or replaced by a replay."""
    from evals.replay import RecordingChatModel, ReplayChatModel

    m = spec.model
    if spec.replay:
        return ReplayChatModel(name_in_key=m.name, settings=m.settings, folder=spec.replay)
    model = m.make()
    if spec.record:
        return RecordingChatModel(inner=model, name_in_key=m.name, settings=m.settings, folder=spec.record)
    return model


def run_trial(spec: TrialSpec) -> list[dict[str, Any]]:
    """Run one task-trial and return its seven rows (never raises)."""
    start = time.perf_counter()
    base = {"suite": spec.suite, "model": spec.model.name, "model_label": spec.model.label,
            "model_kind": spec.model.kind, "task_id": spec.entry.task_id, "modality": spec.entry.modality,
            "guidance": spec.entry.guidance, "trial": spec.trial, "tags": list(spec.entry.tags),
            "seed": spec.entry.seed, "scale": spec.entry.scale}
    try:
        report, misses = _run_graph(spec)
    except Exception as exc:  # noqa: BLE001  the harness failed: every role is unscored, with the reason
        log.error("%s: harness error\n%s", spec.ident, traceback.format_exc())
        why = f"harness error: {type(exc).__name__}: {exc}"[:500]
        return [{**base, "role": r, "phase": PHASE_OF[r], "passed": None, "failure_category": "harness_error",
                 "explanation": why, "run_seconds": round(time.perf_counter() - start, 2)} for r in ROLES]
    return rows_from_report(base, report, spec.model, misses, time.perf_counter() - start)


def _run_graph(spec: TrialSpec) -> tuple[dict[str, Any], list[str]]:
    from envs.build import load
    from envs.readonly import make_writable
    from evals.run_report import write_run_report
    from graphs.server import build_graph

    built = ensure_env(spec.env_cache, spec.entry.modality, spec.entry.seed, spec.entry.scale)
    folder = spec.folder
    env_dir, run_dir = folder / "env", folder / "run"
    if run_dir.exists():  # a trial the runner crashed in: start it over
        shutil.rmtree(run_dir)
    private_copy(built, env_dir)
    run_dir.mkdir(parents=True)
    (folder / "spec.json").write_text(json.dumps(spec_dict(spec), indent=1, default=str))
    key = load(env_dir).key
    model = chat_model(spec)
    config = {"configurable": {"env_dir": str(env_dir), "run_dir": str(run_dir), "model": model,
                               "guidance": spec.entry.guidance, "approve": "auto", "train": dict(spec.train)},
              "recursion_limit": 400}
    state = build_graph().invoke({"request": spec.entry.request}, config)
    report = write_run_report(state, out=run_dir, env_dir=env_dir, task_id=spec.entry.task_id,
                              model=spec.model.name, guidance=spec.entry.guidance, key=key,
                              thresholds=spec.thresholds, train=spec.train)
    if not spec.keep_env:
        make_writable(env_dir)
        shutil.rmtree(env_dir)
    return report, list(getattr(model, "misses", []))


def rows_from_report(base: dict[str, Any], report: dict[str, Any], model: ModelEntry, misses: list[str],
                     seconds: float) -> list[dict[str, Any]]:
    """Seven rows: each role's verdict, its usage and cost, and the run's time and accuracies."""
    usage = report.get("usage_by_role", {})
    metrics = report.get("metrics") or {}
    run = {"run_seconds": round(seconds, 2), "phase_seconds": report.get("phase_seconds", {}),
           "fed_bacc": (metrics.get("federated") or {}).get("balanced_accuracy"),
           "local_bacc": metrics.get("local_only_mean"), "pooled_bacc": metrics.get("pooled"),
           "algorithm": (report.get("algorithm") or {}).get("algorithm"), "replay_misses": len(misses),
           **outcome_figures(report)}
    rows = []
    for role in ROLES:
        verdict = report["roles"].get(role, {})
        u = usage.get(role, {})
        walls = [o["seconds"] for o in report.get("outcomes", []) if o["role"] == role]
        tin, tout = int(u.get("input_tokens", 0)), int(u.get("output_tokens", 0))
        row = {**base, "role": role, "phase": PHASE_OF[role], "passed": verdict.get("passed"),
               "failure_category": verdict.get("failure_category"), "explanation": verdict.get("explanation", ""),
               "calls": int(u.get("calls", 0)), "input_tokens": tin, "output_tokens": tout,
               "tokens_estimated": bool(u.get("estimated")), "tool_calls": int(u.get("tool_calls", 0)),
               "format_slips": int(u.get("format_slips", 0)),
               "role_seconds": round(max(walls), 2) if walls else 0.0, "cost_usd": model.cost(tin, tout), **run}
        if misses:  # a replay that missed scores nothing: the recording, not the model, is at fault
            row.update(passed=None, failure_category="replay_miss", explanation=misses[0][:500])
        rows.append(row)
    return rows


def outcome_figures(report: dict[str, Any]) -> dict[str, float | None]:
    """S3's regret (best reference outcome minus the chosen one's) and S4's federated-minus-local-only."""
    roles = report.get("roles", {})
    s3 = (roles.get("S3") or {}).get("detail") or {}
    s4 = ((roles.get("S4") or {}).get("detail") or {}).get("comparison") or {}
    return {"s3_regret": s3.get("regret"), "fed_minus_local": s4.get("federated_minus_local")}


def spec_dict(spec: TrialSpec) -> dict[str, Any]:
    """The spec as stored beside a run (so it can be re-run or re-scored by name and arguments)."""
    return json.loads(json.dumps(asdict(spec), default=str))
