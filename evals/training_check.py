"""S4's check: training really started with the chosen algorithm on the right sites and ran to the end.

The agent's own TrainingReport is not trusted alone: the run's ``summary.json`` written by fl_core
under the run folder must exist and agree with it.
"""

from __future__ import annotations

import json
from typing import Any

from evals.scoring import Trial


def _summaries(t: Trial) -> list[dict[str, Any]]:
    root = t.run_dir / "training"
    return [json.loads(p.read_text()) for p in sorted(root.rglob("summary.json"))] if root.is_dir() else []


def verify_training(t: Trial) -> tuple[bool, str, dict[str, Any]]:
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
    detail = {"report": report, "runs_found": len(runs)}
    return (not problems, "; ".join(problems) or "training ran to the end with the chosen algorithm and sites",
            detail)
