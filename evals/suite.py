"""Benchmark suites: which tasks run, in which guidance styles, at which scale, judged by which thresholds.

A suite is a YAML file under ``evals/suites/`` (or any path) validated here, so a typo in a task id or
a threshold name fails before anything is built. Tasks name a modality's task template; their hard
kinds (implicit goal, implicit labels, interdependent steps) are read from the template, never typed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from envs.concepts import Modality
from envs.tasks import TaskTemplate
from evals.scoring import Thresholds
from fl_core.config import RunConfig
from graphs.roles import GUIDANCE, Guidance

SUITES_DIR = Path(__file__).parent / "suites"


def template(modality: str, task_id: str) -> TaskTemplate:
    """The task template ``task_id`` of ``modality`` (ValueError lists the modality's templates)."""
    from envs.modalities import get_modality

    tasks = {t.task_id: t for t in get_modality(modality).TASKS}
    if task_id not in tasks:
        raise ValueError(f"{modality} has no task template {task_id!r}; its templates: {', '.join(tasks)}")
    return tasks[task_id]


def hard_kinds(t: TaskTemplate) -> list[str]:
    """The hard kinds a template belongs to.

    ``implicit-goal``: the request implies an algorithm family without naming it. ``implicit-labels``:
    the request implies, not names, the label set. ``interdependent``: a later role can only be right if
    an earlier role inferred what the request left unsaid (S3 needs S1's implicit goal; C1 and C3 need
    S1's implied class partition).
    """
    kinds = []
    if t.implicit_goal != "none":
        kinds.append("implicit-goal")
    if t.implicit_labels:
        kinds.append("implicit-labels")
    if kinds:
        kinds.append("interdependent")
    return kinds


class TrainBudget(BaseModel):
    """The training S4 launches (the same for every model, so S4 measures the agent, not the budget)."""

    model_config = ConfigDict(extra="forbid")

    rounds: int = Field(default=1, ge=1)
    local_epochs: int = Field(default=1, ge=1)
    baselines: bool = False
    num_threads: int = Field(default=1, ge=1)
    image_size: int = Field(default=64, ge=16, le=512, description="pixels per side the sites' images train at")
    # The client optimizer is the consortium's, fixed for every model (the training tools' defaults,
    # ``fl_core.config.RunConfig``, unless the suite sets them): an agent may still pass its own lr or
    # batch size to launch_training, and S4 judges the outcome that reaches.
    optimizer: Literal["sgd", "adam"] = RunConfig.optimizer
    lr: float = Field(default=RunConfig.lr, gt=0, le=10, description="client learning rate a launch gets unless it sets one")
    batch_size: int = Field(default=RunConfig.batch_size, ge=1, le=1024, description="local mini-batch a launch gets unless it sets one")


class SuiteTask(BaseModel):
    """One task template in one environment, in one or both guidance styles."""

    model_config = ConfigDict(extra="forbid")

    task: str
    modality: Modality
    seed: int = 0
    scale: float | None = Field(default=None, gt=0, description="None: the suite's scale")
    guidance: list[Guidance] = Field(default_factory=lambda: list(GUIDANCE))

    @model_validator(mode="after")
    def _template_exists(self) -> SuiteTask:
        template(self.modality, self.task)
        if len(set(self.guidance)) != len(self.guidance):
            raise ValueError(f"{self.task}: a guidance style is listed twice")
        return self


@dataclass(frozen=True)
class TaskEntry:
    """One (task, guidance style) of a suite, resolved: what a task-trial needs besides the model."""

    task_id: str
    modality: str
    seed: int
    scale: float
    guidance: str
    request: str
    tags: tuple[str, ...]

    @property
    def env_key(self) -> tuple[str, int, float]:
        """Task-trials with the same env_key share one cached build (each gets its own copy)."""
        return (self.modality, self.seed, self.scale)


class Suite(BaseModel):
    """A validated suite file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    scale: float = Field(default=1.0, gt=0)
    train: TrainBudget = Field(default_factory=TrainBudget)
    reference_algorithms: list[str] | None = Field(
        default=None, description="algorithms of each task's reference table (envs.calibrate); None: all registered")
    thresholds: dict[str, Any] = Field(default_factory=dict)
    tasks: list[SuiteTask] = Field(min_length=1)

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, v: dict[str, Any]) -> dict[str, Any]:
        names = {f.name for f in dataclasses.fields(Thresholds)}
        unknown = sorted(set(v) - names)
        if unknown:
            raise ValueError(f"unknown threshold(s) {unknown}; evals.scoring.Thresholds has {sorted(names)}")
        if "c2_min_recall" in v:
            kinds = set(Thresholds().c2_min_recall)
            if bad := sorted(set(v["c2_min_recall"]) - kinds):
                raise ValueError(f"c2_min_recall has unknown kind(s) {bad}; kinds: {sorted(kinds)}")
        for name in ("s3_margin", "s4_margin"):
            if name in v and not (isinstance(v[name], int | float) and 0 <= v[name] <= 1):
                raise ValueError(f"{name} must be a number in [0, 1] (a share of balanced accuracy), "
                                 f"got {v[name]!r}")
        return v

    @cached_property
    def judged_by(self) -> Thresholds:
        """The suite's :class:`Thresholds` (defaults for fields the file leaves out)."""
        v = dict(self.thresholds)
        if "c2_min_recall" in v:
            v["c2_min_recall"] = {**Thresholds().c2_min_recall, **v["c2_min_recall"]}
        return Thresholds(**v)

    def entries(self, guidance: str = "both", scale: float | None = None,
                only: set[str] | None = None) -> list[TaskEntry]:
        """Every (task, guidance style), optionally one style, a scale override, or a subset of task ids."""
        if guidance not in ("both", *GUIDANCE):
            raise ValueError(f"guidance must be 'both' or one of {GUIDANCE}, got {guidance!r}")
        if only and (unknown := only - {t.task for t in self.tasks}):
            raise ValueError(f"suite {self.name} has no task(s) {sorted(unknown)}")
        out = []
        for t in self.tasks:
            if only and t.task not in only:
                continue
            tpl = template(t.modality, t.task)
            for g in t.guidance:
                if guidance in ("both", g):
                    out.append(TaskEntry(t.task, t.modality, t.seed, scale or t.scale or self.scale, g,
                                         tpl.request, tuple(hard_kinds(tpl))))
        return out


def list_suites() -> list[str]:
    """Names of the suites shipped under ``evals/suites/``."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """A shipped suite by name, or a suite file by path (ValueError names the shipped suites)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ValueError(f"no suite {str(name_or_path)!r}; shipped suites: {', '.join(list_suites())}, "
                         "or give a path to a .yaml file")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.setdefault("name", path.stem)
    return Suite.model_validate(data)
