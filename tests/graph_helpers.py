"""Helpers for graph tests: a private copy of a built environment and a run config."""

from __future__ import annotations

import shutil
from pathlib import Path

from envs.readonly import make_writable
from evals.suite import load_suite

#: private copy -> the shared build it was copied from (score_run calibrates there, once per run).
_ORIGIN: dict[Path, Path] = {}


def private_env(built, tmp: Path) -> Path:
    """Copy a session-built environment so a run's work/ folders stay in this test."""
    dest = tmp / "env"
    shutil.copytree(built.root, dest, symlinks=True, ignore=shutil.ignore_patterns("work", "*.tmp"))
    _ORIGIN[dest.resolve()] = Path(built.root)
    return dest


def run_config(env_dir: Path, run_dir: Path, **extra) -> dict:
    from graphs.scripted.model import ScriptedChatModel

    conf = {"env_dir": str(env_dir), "run_dir": str(run_dir), "model": ScriptedChatModel(),
            "guidance": "fine-grained", "train": dict(TEST_TRAIN)}
    conf.update(extra)
    return {"configurable": conf, "recursion_limit": 400}


def cleanup(path: Path) -> None:
    if path.exists():
        make_writable(path)


def counting_model():
    """The scripted policy, counting its model calls per role (the cost a re-run role would pay twice)."""
    from collections import Counter

    from pydantic import Field

    from graphs.messages import OUTPUT_OF_ROLE
    from graphs.scripted.model import ScriptedChatModel

    role_of = {f"submit_{schema.__name__}": role for role, schema in OUTPUT_OF_ROLE.items()}

    class CountingScripted(ScriptedChatModel):
        calls: Counter = Field(default_factory=Counter)  # shared by the copies bind_tools makes
        runs: Counter = Field(default_factory=Counter)  # (role, site) -> node runs, filled by the test

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            self.calls[next(role_of[n] for n in self.tool_names if n in role_of)] += 1
            return super()._generate(messages, stop, run_manager, **kwargs)

    return CountingScripted()


#: The reference set graph tests calibrate (cheap): the scripted S3's choice on sites this small
#: (kNN-Per), a generic and a feature-skew method; any other choice is calibrated on demand.
TEST_REFERENCE = ("fedavg", "fedbn", "knnper")
#: What ``run_config`` tells S4 to launch with: the full suite's training, so the graph tests and the
#: full-suite eval (both on the TEST_SCALE builds) calibrate and share one reference table per task.
TEST_TRAIN = {k: v for k, v in load_suite("full").train.model_dump().items() if k != "num_threads"}


def score_run(state: dict, key, task_id: str, env: Path, run_dir: Path, train: dict | None = None,
              algorithms: tuple[str, ...] = TEST_REFERENCE) -> dict:
    """Every role's score, after calibrating the task's reference table for ``train`` (what eval does)."""
    from envs.calibrate import calibrate, save_table
    from evals.reference import reference_settings
    from evals.scorers import score_trial
    from evals.scoring import Trial

    train = dict(TEST_TRAIN if train is None else train)
    settings = reference_settings(train)
    origin = _ORIGIN.get(Path(env).resolve())
    if origin is None:
        calibrate(env, task_id, settings, list(algorithms))
    else:  # the table of the shared build (computed once per pytest run, under calibrate's lock), copied in
        save_table(Path(env), calibrate(origin, task_id, settings, list(algorithms)))
    return score_trial(Trial(state=state, key=key, task_id=task_id, env_dir=env, run_dir=run_dir, train=train))


def run_and_score(built, env: Path, run_dir: Path, task_id: str, train: dict):
    """The scripted graph on one task of a private environment copy: (final state, role scores)."""
    from graphs.server import build_graph

    task = built.key.tasks[task_id]
    state = build_graph().invoke({"request": task.request}, run_config(env, run_dir, train=train))
    return state, score_run(state, built.key, task_id, env, run_dir, train)
