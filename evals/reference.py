"""The training phase's answer key: every algorithm's measured outcome on one task's oracle data.

S3 and S4 used to be judged by names (an algorithm in a hand-written acceptable set, a run that
finished). A reference table replaces the names with measurements: each registered algorithm trained
on the oracle-prepared folders of a task (``envs.oracle``), with the settings the training tools use,
plus local-only and pooled baselines. It is computed once per environment (``envs.calibrate``) and
stored beside the answer key, so every trial and every model is judged against the same numbers.

The *outcome* of an algorithm is the mean over sites' test splits of the balanced accuracy of its
primary model (the personalised one for personalised methods, else the global one), the same number
a user reads in the run's report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fl_core.config import RunConfig

#: Bump when the way a table is computed changes, so cached tables of the old way are recomputed.
REFERENCE_VERSION = 2


class ReferenceSettings(BaseModel):
    """The training settings a table was measured with (part of its cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(ge=1)
    local_epochs: int = Field(ge=1)
    model: str = "tiny_cnn"
    image_size: int = 64
    seed: int = 0
    lr: float = RunConfig.lr
    batch_size: int = RunConfig.batch_size
    optimizer: Literal["sgd", "adam"] = RunConfig.optimizer
    bn_calibration: Literal["none", "local"] = "none"
    global_pool: Literal["avg", "catavgmax"] = "avg"

    def digest(self) -> str:
        """A short stable hash of the settings (with the table format's version)."""
        blob = json.dumps({"v": REFERENCE_VERSION, **self.model_dump()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


class AlgorithmOutcome(BaseModel):
    """One algorithm's measured result on the task (``error`` set when its training failed)."""

    model_config = ConfigDict(extra="forbid")

    algorithm: str
    primary_model: Literal["global", "personal"] = "global"
    global_bacc: float | None = None
    personal_bacc: float | None = Field(default=None, description="None: the method keeps nothing personal")
    per_site: dict[str, float] = Field(default_factory=dict, description="site -> primary model's test bal. acc.")
    seconds: float = 0.0
    error: str | None = None

    @property
    def outcome(self) -> float | None:
        """The primary model's mean balanced accuracy over the sites (None when training failed)."""
        if self.error is not None:
            return None
        return self.personal_bacc if self.primary_model == "personal" else self.global_bacc


class Baselines(BaseModel):
    """What the sites reach without federating (local-only) and with their images pooled."""

    model_config = ConfigDict(extra="forbid")

    local_mean: float
    local_best: float
    local_best_site: str
    pooled: float


class ReferenceTable(BaseModel):
    """Every calibrated algorithm's outcome on one task of one built environment."""

    model_config = ConfigDict(extra="forbid")

    version: int = REFERENCE_VERSION
    modality: str
    env_seed: int
    scale: float
    task_id: str
    settings: ReferenceSettings
    sites: list[str]
    test_sizes: list[int] = Field(default_factory=list, description="test images per site, by site order")
    rows: dict[str, AlgorithmOutcome] = Field(default_factory=dict)
    baselines: Baselines | None = None
    seconds: float = Field(default=0.0, description="total wall seconds spent calibrating")

    @property
    def algorithms(self) -> list[str]:
        return sorted(self.rows)

    def outcome(self, algorithm: str) -> float | None:
        row = self.rows.get(algorithm)
        return None if row is None else row.outcome

    def best(self, among: list[str] | tuple[str, ...] | None = None) -> tuple[str, float]:
        """The algorithm with the highest outcome (among ``among`` when given); ties go to the name first
        in alphabetical order, so the answer never depends on dict order.

        Raises:
            ValueError: no algorithm (of ``among``) has a measured outcome.
        """
        pool = [(n, o) for n in (among or self.rows) if (o := self.outcome(n)) is not None]
        if not pool:
            raise ValueError(f"no measured outcome among {sorted(among or self.rows)} for {self.task_id}")
        return min(pool, key=lambda p: (-p[1], p[0]))

    def regret(self, algorithm: str) -> float | None:
        """Best outcome minus this algorithm's (None when it has no measured outcome)."""
        mine = self.outcome(algorithm)
        return None if mine is None else self.best()[1] - mine

    def within(self, margin: float) -> list[str]:
        """The algorithms whose outcome is within ``margin`` of the best one."""
        top = self.best()[1]
        return sorted(n for n in self.rows if (o := self.outcome(n)) is not None and top - o <= margin + 1e-12)


#: ``train:`` keys of a suite that change what a run measures (the rest, e.g. num_threads, do not).
_MEASURED = ("rounds", "local_epochs", "model", "image_size", "seed", "lr", "batch_size", "optimizer",
             "bn_calibration", "global_pool")


def reference_settings(train: dict) -> ReferenceSettings:
    """The settings a suite's ``train:`` block trains with, as a table's cache key (a pure function).

    The keys S4 is told (rounds, local_epochs) and the fixed RunConfig fields the training tools pass
    (model, image_size, seed, lr, ...) are kept; the ones that change nothing measured (num_threads,
    baselines, engine) are dropped. Missing keys take the training tools' defaults (rounds 5, local
    epochs 1: ``tools.federate.launch_training``).
    """
    kept = {k: train[k] for k in _MEASURED if k in train}
    return ReferenceSettings(**{"rounds": 5, "local_epochs": 1, **kept})


def reference_path(env_dir: Path, task_id: str, settings: ReferenceSettings) -> Path:
    """Where a task's table lives: beside the answer key, one file per task and settings."""
    return Path(env_dir) / "key" / "reference" / f"{task_id}-{settings.digest()}.json"


def load_reference(env_dir: Path, task_id: str, settings: ReferenceSettings) -> ReferenceTable | None:
    """The stored table, or None when the task was never calibrated with these settings."""
    path = reference_path(env_dir, task_id, settings)
    if not path.exists():
        return None
    table = ReferenceTable.model_validate_json(path.read_text(encoding="utf-8"))
    return table if table.version == REFERENCE_VERSION else None


def save_reference(env_dir: Path, table: ReferenceTable) -> Path:
    """Write the table atomically (a half-written file must never be read as a key)."""
    path = reference_path(env_dir, table.task_id, table.settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(table.model_dump_json(indent=1), encoding="utf-8")
    tmp.replace(path)
    return path
