"""S4's check: the run finished with the chosen algorithm on the approved sites, and reached its outcome.

The agent's own TrainingReport is not trusted alone: the run's ``summary.json`` written by fl_core
under the run folder must exist and agree with it. Finishing is not enough: the run's measured
outcome (its primary model's mean balanced accuracy over the sites' test splits) must reach what the
same algorithm reaches in the task's reference table, minus the S4 margin, so a run launched with
too few rounds, too few epochs or a learning rate far off fails even though it "finished".
"""

from __future__ import annotations

import json
from typing import Any

from evals.outcome_rules import noise_margin, s4_verdict
from evals.reference import ReferenceTable, reference_settings
from evals.reference_lookup import trial_reference
from evals.scoring import Trial

#: The settings the agent chose that S4 is judged on, beside the reference's.
SETTINGS = ("rounds", "local_epochs", "lr", "optimizer", "batch_size", "global_pool", "bn_calibration")


def _summaries(t: Trial) -> list[dict[str, Any]]:
    root = t.run_dir / "training"
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))] if root.is_dir() else []


def run_outcome(summary: dict[str, Any]) -> float | None:
    """The run's primary model's mean balanced accuracy over the sites (the reference's measure).

    ``summary.json`` carries it as ``outcome`` (:attr:`fl_core.result.RunResult.outcome`); summaries
    written before it did are read from the primary model's metrics.
    """
    if summary.get("outcome") is not None:
        return float(summary["outcome"])
    kind = "personal" if summary.get("primary_model") == "personal" else "global"
    return ((summary.get(kind) or {}).get("client_mean") or {}).get("balanced_accuracy")


def comparison(summary: dict[str, Any], table: ReferenceTable) -> dict[str, Any]:
    """Federated vs local-only mean vs pooled, from the run's own baselines when it trained them."""
    base = summary.get("baselines") or {}
    fed = run_outcome(summary)
    if base.get("local") and base.get("pooled"):
        local = base["local"]["client_mean"]["balanced_accuracy"]
        pooled = base["pooled"]["client_mean"]["balanced_accuracy"]
        source = "the run's own baselines"
    elif table.baselines is not None:
        local, pooled, source = table.baselines.local_mean, table.baselines.pooled, "the reference table's baselines"
    else:
        return {"federated": fed}
    return {"federated": fed, "local_only_mean": local, "pooled": pooled, "baselines_from": source,
            "federated_minus_local": None if fed is None else fed - local}


def verify_training(t: Trial) -> tuple[bool | None, str, dict[str, Any]]:
    """(passed, why, detail); passed None when it cannot be judged (no reference table)."""
    report = t.state.get("training") or {}
    chosen = (t.state.get("algorithm") or {}).get("algorithm")
    from graphs.server import training_sites

    want_sites = training_sites(t.state)
    problems = []
    if report.get("status") != "finished":
        problems.append(f"status {report.get('status')!r}, not finished")
    if report.get("algorithm") != chosen:
        problems.append(f"trained {report.get('algorithm')!r}, S3 chose {chosen!r}")
    if sorted(report.get("sites", [])) != want_sites:
        problems.append(f"trained on {sorted(report.get('sites', []))}, approved sites are {want_sites}")
    runs = [s for s in _summaries(t) if s.get("config", {}).get("algorithm", s.get("algorithm")) == chosen]
    if not runs:
        problems.append("no finished fl_core run of the chosen algorithm under the run folder")
    detail: dict[str, Any] = {"report": report, "runs_found": len(runs)}
    if problems:
        return False, "; ".join(problems), detail
    return _outcome_half(t, chosen, runs[-1], detail)


def _outcome_half(t: Trial, chosen: str, summary: dict[str, Any],
                  detail: dict[str, Any]) -> tuple[bool | None, str, dict[str, Any]]:
    table, why = trial_reference(t, [chosen])
    if table is None:
        return None, f"training finished, but its outcome cannot be judged: {why}", {**detail, "not_calibrated": True}
    noise = noise_margin([c.get("n") or 0 for c in (summary.get("global") or {}).get("clients", [])])
    v = s4_verdict(table, chosen, run_outcome(summary), max(t.thresholds.s4_margin, noise))
    config = summary.get("config") or {}
    detail.update(v.detail, suite_margin=t.thresholds.s4_margin, noise_margin=round(noise, 3),
                  comparison=comparison(summary, table),
                  settings={"run": {k: config.get(k) for k in SETTINGS},
                            "reference": reference_settings(t.train).model_dump()})
    if v.passed is None:
        return None, v.why, detail
    head = "training finished and reached its reference outcome" if v.passed else \
        "training finished but fell short of its reference outcome"
    return v.passed, f"{head}: {v.why}", detail
