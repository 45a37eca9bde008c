"""Scoring primitives: the RoleScore every scorer returns, the registry, and the suite thresholds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from envs.key import AnswerKey

FailureCategory = str  # step_limit | repeated_call | format_error | provider_error | policy_error | harness_error | wrong_decision | upstream | ...


#: The category of a role left unscored for want of a reference table (not a failure of anyone).
NOT_CALIBRATED = "not_calibrated"


class RoleScore(BaseModel):
    """One role's verdict on one task trial."""

    role: str
    passed: bool | None = Field(description="None: unscored (the harness, not the model, failed)")
    failure_category: FailureCategory | None = None
    explanation: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def unscored(cls, role: str, why: str) -> RoleScore:
        return cls(role=role, passed=None, failure_category="harness_error", explanation=why)

    @classmethod
    def not_calibrated(cls, role: str, why: str, detail: dict[str, Any] | None = None) -> RoleScore:
        """Unscored because the task has no reference table for the run's settings: nothing went wrong,
        the measurement S3/S4 are judged against was not computed (``why`` says how to compute it)."""
        return cls(role=role, passed=None, failure_category=NOT_CALIBRATED, explanation=why, detail=detail or {})


@dataclass(frozen=True)
class Thresholds:
    """Pass thresholds, the same for every model (documented in the suite)."""

    c1_min_f1: float = 1.0  # mean per-site F1 of selected datasets
    c2_min_recall: dict[str, float] = field(default_factory=lambda: {
        "corrupt": 1.0, "non_image": 1.0, "mask": 1.0, "duplicate": 0.8, "offtopic": 0.8})
    c2_min_clean_kept: float = 0.85  # clean images of the selected datasets that survive cleaning
    require_implicit_goal: bool = True  # S1 must name the task's implicit goal
    # S3/S4 margins on measured outcomes (primary model's client-mean balanced accuracy), from the
    # task's reference table (evals.reference): the 90th percentile of an algorithm's seed-to-seed
    # spread, 0.144 at scale 0.3 (benchmarks/reference_spread.py); the suites state the same.
    s3_margin: float = 0.15  # S3: chosen algorithm's outcome >= best outcome - s3_margin
    s4_margin: float = 0.15  # S4: run's outcome >= reference outcome of that algorithm - s4_margin


@dataclass(frozen=True)
class Trial:
    """Everything a scorer may look at: the final server state and where the run left its files."""

    state: dict[str, Any]
    key: AnswerKey
    task_id: str
    env_dir: Path
    run_dir: Path
    thresholds: Thresholds = Thresholds()
    #: the suite's ``train:`` block S4 was told to launch with; it names the reference table S3/S4 are
    #: judged against (``evals.reference.reference_settings``). Empty: the training tools' defaults.
    train: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self):
        return self.key.tasks[self.task_id]

    def outcome(self, role: str, site_id: str | None = None) -> dict | None:
        return next((o for o in self.state.get("outcomes", []) if o["role"] == role and o["site_id"] == site_id), None)

    def outcomes(self, role: str) -> list[dict]:
        return [o for o in self.state.get("outcomes", []) if o["role"] == role]


Scorer = Callable[[Trial], RoleScore]
SCORERS: dict[str, Scorer] = {}


def scorer(role: str) -> Callable[[Scorer], Scorer]:
    """Register the scorer of ``role``."""

    def deco(fn: Scorer) -> Scorer:
        SCORERS[role] = fn
        return fn

    return deco


def not_submitted(role: str, outcomes: list[dict]) -> RoleScore | None:
    """A failure verdict when the role (at any site) never submitted; None if all submitted."""
    failed = [o for o in outcomes if not o["success"]]
    if not outcomes:
        return RoleScore(role=role, passed=False, failure_category="upstream", explanation="the role never ran")
    if failed:
        o = failed[0]
        cat = o["failure"] or "no_submission"
        if cat == "harness_error":
            return RoleScore.unscored(role, o["reason"])
        where = f" at {o['site_id']}" if o["site_id"] else ""
        return RoleScore(role=role, passed=False, failure_category=cat, explanation=f"{cat}{where}: {o['reason']}")
    return None
