"""The benchmark's figures: per-role success heatmap, and cost against Overall."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from evals.results import ROLES


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: workers and CI have no display
    import matplotlib.pyplot as plt

    return plt


def plot_role_heatmap(table: pd.DataFrame, path: Path) -> Path | None:
    """Rows: model (and guidance style); columns: the seven roles and Overall; cells: success %."""
    if table.empty:
        return None
    plt = _plt()
    labels = [f"{r.model} / {r.guidance}" if "guidance" in table else r.model for r in table.itertuples()]
    values = table[[*ROLES, "overall"]].astype(float).to_numpy()
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(labels)))
    im = ax.imshow(values, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(ROLES) + 1), [*ROLES, "Overall"])
    ax.set_yticks(range(len(labels)), labels)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, "-" if math.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="success %")
    ax.set_title("Per-role success")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_cost_vs_overall(table: pd.DataFrame, path: Path) -> Path | None:
    """One point per model: cost per task-trial (USD, symlog) against Overall %."""
    if table.empty:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cost = table["cost_per_trial_usd"].astype(float).fillna(0.0)
    ax.scatter(cost, table["overall"].astype(float))
    for x, y, name in zip(cost, table["overall"], table["model"]):
        ax.annotate(name, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("cost per task-trial (USD; unknown prices as 0)")
    ax.set_ylabel("Overall success %")
    ax.set_ylim(-5, 105)
    ax.set_title("Cost vs Overall")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
