"""results.jsonl (one row per task, guidance, trial, model and role) and the summaries built from it.

The file is append-only and written by the runner's main process alone, one task-trial (seven rows)
per write, so a crash loses at most the trial in flight; a half-written last line is ignored on
reading. When a task-trial appears twice (a resumed run retried it), its last rows win.

Success rates exclude unscored roles (the harness, not the model, failed); they are counted apart.
The paper's Overall is successes / (7 x trials) over scored verdicts. pass^k: the share of tasks
whose every trial passed every role.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

ROLES = ("S1", "C1", "S2", "C2", "C3", "S3", "S4")
TRIAL_KEY = ("model", "task_id", "guidance", "trial")
GROUP = ("model", "modality", "guidance")


def append_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Append one task-trial's rows in one write, flushed to disk (after a torn line, on a new line)."""
    text = "".join(json.dumps(r, default=str) + "\n" for r in rows)
    if path.exists() and path.stat().st_size:
        with open(path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                text = "\n" + text
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Every row, the last copy of each (task-trial, role); a torn line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    latest: dict[tuple, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            log.warning("%s:%d is not JSON (a crash mid-write?); skipping it", path, n)
            continue
        latest[(*(row[k] for k in TRIAL_KEY), row["role"])] = row
    complete = {}
    by_trial: dict[tuple, list] = {}
    for k, row in latest.items():
        by_trial.setdefault(k[:4], []).append(row)
    for k, rows in by_trial.items():
        if {r["role"] for r in rows} == set(ROLES):  # a trial counts only with all seven roles
            complete[k] = rows
    return [r for rows in complete.values() for r in rows]


def done_trials(rows: list[dict[str, Any]]) -> set[tuple]:
    """Task-trials that need no rerun: all seven rows present and not all of them unscored."""
    out: dict[tuple, bool] = {}
    for r in rows:
        k = tuple(r[c] for c in TRIAL_KEY)
        out[k] = out.get(k, False) or r["passed"] is not None
    return {k for k, scored in out.items() if scored}


def _pct(passed: pd.Series) -> float:
    scored = passed.dropna()
    return round(100 * scored.astype(bool).mean(), 1) if len(scored) else float("nan")


def _task_success(df: pd.DataFrame) -> pd.Series:
    """Per task-trial: every scored role passed (and at least one was scored)."""
    g = df.groupby(list(TRIAL_KEY), dropna=False)["passed"]
    return g.apply(lambda s: bool(s.notna().any() and s.dropna().astype(bool).all()))


def summarize(rows: list[dict[str, Any]], by: tuple[str, ...] = GROUP) -> pd.DataFrame:
    """One row per ``by`` group: role success %, Overall %, pass^k %, then counts, cost, time, accuracy."""
    if not rows:
        return pd.DataFrame(columns=[*by, *ROLES, "overall"])
    df = pd.DataFrame(rows)
    df["tags"] = df["tags"].apply(lambda t: tuple(t) if isinstance(t, list) else ())
    out = []
    for keys, g in df.groupby(list(by), dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        rec: dict[str, Any] = dict(zip(by, keys))
        for role in ROLES:
            rec[role] = _pct(g.loc[g["role"] == role, "passed"])
        rec["overall"] = _pct(g["passed"])
        trials = g.drop_duplicates(list(TRIAL_KEY))
        per_trial = _task_success(g)
        per_task = per_trial.groupby(level=["model", "task_id", "guidance"]).all()
        rec["pass^k"] = round(100 * per_task.mean(), 1) if len(per_task) else float("nan")
        rec["tasks"] = len(per_task)
        rec["trials"] = len(trials)
        rec["unscored"] = int(g["passed"].isna().sum())
        for col in ("input_tokens", "output_tokens", "tool_calls", "format_slips"):
            rec[col] = int(g[col].fillna(0).sum()) if col in g else 0
        cost = g["cost_usd"] if "cost_usd" in g else pd.Series(dtype=float)
        rec["cost_usd"] = round(float(cost.sum()), 4) if cost.notna().any() else float("nan")
        rec["cost_per_trial_usd"] = round(rec["cost_usd"] / len(trials), 5) if len(trials) else float("nan")
        rec["seconds_per_trial"] = round(float(trials["run_seconds"].mean()), 1) if "run_seconds" in g else float("nan")
        for col in ("fed_bacc", "local_bacc", "pooled_bacc", "s3_regret", "fed_minus_local"):
            vals = pd.to_numeric(trials[col], errors="coerce") if col in trials else pd.Series(dtype=float)
            rec[col] = round(float(vals.mean()), 3) if vals.notna().any() else float("nan")
        out.append(rec)
    return pd.DataFrame(out)


def by_tag(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Overall % per model and hard kind (tasks with no hard kind count as ``plain``)."""
    exploded = [{**r, "kind": tag} for r in rows for tag in (r.get("tags") or ["plain"])]
    if not exploded:
        return pd.DataFrame()
    df = summarize(exploded, by=("model", "kind"))
    return df.pivot(index="model", columns="kind", values="overall")


def failure_counts(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Failures per model and category (unscored rows under their harness category)."""
    df = pd.DataFrame([r for r in rows if r["passed"] is not True])
    if df.empty:
        return df
    return df.groupby(["model", "failure_category"]).size().unstack(fill_value=0)
