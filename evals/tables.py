"""summary.csv and summary.md of a benchmark run (the paper-style tables), from results.jsonl rows."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from evals.models import entry_for
from evals.results import ROLES, by_tag, failure_counts, summarize

#: Columns of summary.csv, in order: the issue's role columns, then counts, cost, time and accuracy.
CSV_COLUMNS = ["model", "modality", "guidance", *ROLES, "overall", "pass^k", "tasks", "trials", "unscored",
               "input_tokens", "output_tokens", "tool_calls", "format_slips", "cost_usd",
               "cost_per_trial_usd", "seconds_per_trial", "fed_bacc", "local_bacc", "pooled_bacc", "s3_regret",
               "fed_minus_local"]


def _cell(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if isinstance(x, float):
        return f"{x:.1f}" if abs(x) >= 1 or x == 0 else f"{x:.3g}"
    return str(x)


def markdown_table(df: pd.DataFrame, columns: list[str]) -> list[str]:
    cols = [c for c in columns if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in df[cols].itertuples(index=False)]
    return lines


def per_phase(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Tokens, tool calls and cost summed per model and phase, with the phase's mean wall time."""
    df = pd.DataFrame(rows)
    if df.empty or "phase" not in df or "input_tokens" not in df:
        return pd.DataFrame()
    sums = df.groupby(["model", "phase"])[["input_tokens", "output_tokens", "tool_calls", "cost_usd"]].sum(
        min_count=1).reset_index()
    trials = df.drop_duplicates(["model", "task_id", "guidance", "trial"])
    walls = [{"model": r["model"], "phase": int(k.removeprefix("phase_")), "wall": v}
             for r in trials.to_dict("records") for k, v in (r.get("phase_seconds") or {}).items()]
    if walls:
        wall = pd.DataFrame(walls).groupby(["model", "phase"])["wall"].mean().round(1).reset_index()
        sums = sums.merge(wall.rename(columns={"wall": "wall_seconds"}), on=["model", "phase"], how="left")
    return sums


def write_summaries(out: Path, rows: list[dict[str, Any]], title: str = "FedAgentBench") -> pd.DataFrame:
    """Write summary.csv, summary.md and the plots; return the per (model, modality, guidance) table."""
    from evals.plots import plot_cost_vs_overall, plot_role_heatmap

    table = summarize(rows)
    table.reindex(columns=CSV_COLUMNS).to_csv(out / "summary.csv", index=False)
    per_model = summarize(rows, by=("model",))
    per_guidance = summarize(rows, by=("model", "guidance"))
    lines = [f"# {title}: per-role success (%)", "",
             ("Success rates count scored verdicts only; unscored roles (the harness failed, or a replay "
              "missed) are counted in `unscored`. Overall = successes / (7 x trials); pass^k = tasks whose "
              "every trial passed every role."), ""]
    for name in per_model["model"]:
        lines.append(f"- **{name}**: {entry_for(name).label}")
    lines += ["", "## All tasks", ""]
    lines += markdown_table(per_model, ["model", *ROLES, "overall", "pass^k", "trials", "unscored",
                                        "s3_regret", "fed_minus_local", "cost_usd", "seconds_per_trial"])
    lines += ["", ("s3_regret: mean over trials of the best reference outcome minus the chosen algorithm's "
                   "(balanced accuracy; 0 = the best choice). fed_minus_local: mean over trials of the federated "
                   "model's outcome minus the local-only mean (above 0: federating helped)."), ""]
    lines += ["", "## By guidance style", ""]
    lines += markdown_table(per_guidance, ["model", "guidance", *ROLES, "overall", "pass^k", "trials"])
    for guidance, part in table.groupby("guidance", sort=True):
        lines += ["", f"## {guidance}: by modality", ""]
        lines += markdown_table(part, ["model", "modality", *ROLES, "overall", "pass^k", "trials", "unscored"])
    tags = by_tag(rows)
    if not tags.empty:
        lines += ["", "## Overall (%) by hard kind", ""]
        lines += markdown_table(tags.reset_index(), ["model", *tags.columns])
    fails = failure_counts(rows)
    if not fails.empty:
        lines += ["", "## Failures by category (role verdicts)", ""]
        lines += markdown_table(fails.reset_index(), ["model", *fails.columns])
    phases = per_phase(rows)
    if not phases.empty:
        lines += ["", "## Per phase (sums over task-trials; wall seconds: mean per task-trial)", ""]
        lines += markdown_table(phases, list(phases.columns))
    lines += ["", "## Cost, tokens, time and accuracy", ""]
    lines += markdown_table(per_guidance, ["model", "guidance", "input_tokens", "output_tokens", "tool_calls",
                                           "format_slips", "cost_usd", "cost_per_trial_usd", "seconds_per_trial", "fed_bacc",
                                           "local_bacc", "pooled_bacc"])
    figures = [plot_role_heatmap(per_guidance, out / "role_heatmap.png"),
               plot_cost_vs_overall(per_model, out / "cost_vs_overall.png")]
    lines += [""] + [f"![{p.stem}]({p.name})" for p in figures if p is not None]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return table
