"""Report files of a run: history.jsonl, metrics.csv, summary.json and learning_curve.png."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from fl_core.result import RunResult

__all__ = ["REPORT_FILES", "write_all"]

REPORT_FILES = ("history.jsonl", "metrics.csv", "summary.json", "learning_curve.png")
_COLS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "loss", "n")


def _clean(obj: Any) -> Any:
    """JSON has no NaN: write ``null`` instead."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_all(result: RunResult) -> None:
    """Write the four report files into ``result.out_dir``."""
    out = Path(result.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "history.jsonl", "w") as f:
        f.writelines(json.dumps(_clean(rec)) + "\n" for rec in result.history)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("round", "model", "client", *_COLS))
        for rec in result.history:
            for model in ("global", "personal"):
                block = rec[model]
                w.writerow((rec["round"], model, "overall", *(block["overall"][c] for c in _COLS)))
                w.writerow((rec["round"], model, "client_mean", *(block["client_mean"][c] for c in _COLS)))
                for name, m in zip(result.client_names, block["clients"]):
                    w.writerow((rec["round"], model, name, *(m[c] for c in _COLS)))
    (out / "summary.json").write_text(json.dumps(_clean(result.to_dict()), indent=2))
    _plot(result, out / "learning_curve.png")


def _plot(result: RunResult, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rounds = [h["round"] for h in result.history]
    curves = {m: [h[m]["overall"]["balanced_accuracy"] for h in result.history if m in h]
              for m in ("global", "personal")}
    if not curves["personal"] or curves["personal"] == curves["global"]:  # no personalised model: one line
        del curves["personal"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for model, values in curves.items():
        ax1.plot(rounds, values, "-" if model == "global" else "--", marker="o", label=f"{model} (test)")
    ax1.set(xlabel="round", ylabel="balanced accuracy", title=f"{result.config.algorithm}: test")
    ax1.axhline(1 / max(len(result.classes), 1), color="grey", lw=0.8, ls=":", label="chance")
    ax1.legend()
    ax2.plot(rounds, [h["train_loss"] for h in result.history], marker="o", label="train loss")
    ax2.plot(rounds, [h["global"]["overall"]["loss"] for h in result.history], marker="o", label="global test loss")
    ax2.set(xlabel="round", ylabel="cross-entropy", title="loss")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(target, dpi=80)
    plt.close(fig)
