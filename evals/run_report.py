"""The run folder of ``fedagentbench run``: report.json, report.md, usage.csv and the curve image.

report.json holds every role's verdict against the environment's answer key (when the request is one
of the environment's tasks), the boundary messages, per-phase wall time and the usage table.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from evals.scorers import score_trial
from evals.scoring import RoleScore, Thresholds, Trial
from fl_core.result import privacy_note
from graphs.models import describe
from graphs.state import UsageRow
from graphs.usage import totals

PHASES = {1: ("S1", "C1", "S2"), 2: ("C2",), 3: ("C3",), 4: ("S3", "S4")}


def phase_seconds(outcomes: list[dict]) -> dict[str, float]:
    """Wall time of each phase: first start to last end of its roles (clients run in parallel)."""
    out = {}
    for phase, roles in PHASES.items():
        rows = [o for o in outcomes if o["role"] in roles and "started" in o]
        if rows:
            out[f"phase_{phase}"] = round(max(o["ended"] for o in rows) - min(o["started"] for o in rows), 2)
    return out


def training_summary(run_dir: Path, job_id: str | None) -> dict[str, Any] | None:
    if not job_id:
        return None
    path = run_dir / "training" / job_id / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def write_run_report(state: dict[str, Any], *, out: Path, env_dir: Path, task_id: str | None, model: str,
                     guidance: str, key=None, thresholds: Thresholds | None = None,
                     train: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the run (if its request is a known task) and write the report files; return report.json.

    ``thresholds``: a suite's pass thresholds (default: :class:`Thresholds`' defaults).
    ``train``: the training settings S4 was told to use; they pick the reference table S3/S4 are
    judged against (default: the training tools' defaults).
    """
    scores: dict[str, RoleScore] = {}
    if key is not None and task_id:
        scores = score_trial(Trial(state=state, key=key, task_id=task_id, env_dir=env_dir, run_dir=out,
                                   thresholds=thresholds or Thresholds(), train=dict(train or {})))
    training = state.get("training") or {}
    summary = training_summary(out, training.get("job_id"))
    unkeyed = sorted(set(state.get("selections") or {}) - set(key.sites if key is not None else ()))
    if scores:
        scoring = "scored against the environment's answer key" + (
            f"; sites without a key (registered real sites) are reported, not scored: {', '.join(unkeyed)}"
            if unkeyed else "")
    else:
        scoring = ("not scored: " + ("this environment has no answer key (registered real sites)" if key is None
                                     else "the request is not one of the environment's tasks")
                   + "; each role's outcome is reported as it ran")
    report = {
        "scoring": scoring, "unscored_sites": unkeyed if scores else sorted(state.get("selections") or {}),
        "request": state.get("request"), "task_id": task_id, "model": model, "model_label": describe(model),
        "guidance": guidance,
        "roles": {r: s.model_dump() for r, s in scores.items()} or {
            o["role"]: {"success": o["success"], "scored": False} for o in state.get("outcomes", [])},
        "outcomes": state.get("outcomes", []), "task_spec": state.get("task_spec"),
        "selections": state.get("selections"), "approvals": state.get("approvals"),
        "preprocess": state.get("preprocess"), "harmonization": state.get("harmonization"),
        "algorithm": state.get("algorithm"), "training": training,
        "shares": algorithm_shares(state.get("algorithm"), summary),
        "metrics": _metrics(summary), "phase_seconds": phase_seconds(state.get("outcomes", [])),
        "usage_by_role": totals(state.get("usage", [])),
    }
    for s in report["roles"].values():  # the shape: roles.S1.success
        s.setdefault("success", s.get("passed"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    _write_usage(out / "usage.csv", state.get("usage", []))
    if summary and (out / "training" / training["job_id"] / "learning_curve.png").exists():
        shutil.copy(out / "training" / training["job_id"] / "learning_curve.png", out / "learning_curve.png")
    (out / "report.md").write_text(render_markdown(report, curve=(out / "learning_curve.png").exists()))
    return report


def algorithm_shares(choice: dict | None, summary: dict | None) -> list[str] | None:
    """What the run's algorithm uploads beyond weights: the training summary's record, else the catalog's.

    ``None`` when no algorithm was chosen (or the name is not in the catalog).
    """
    if summary and "shares" in summary:
        return list(summary["shares"])
    name = (choice or {}).get("algorithm")
    if not name:
        return None
    from algorithms.catalog import get_entry

    try:
        return list(get_entry(str(name).strip().lower()).shares)
    except ValueError:
        return None


def _metrics(summary: dict | None) -> dict[str, Any]:
    if not summary:
        return {}
    base = summary.get("baselines") or {}
    local = [c.get("balanced_accuracy") for c in (base.get("local") or {}).get("clients", [])]
    pooled = ((base.get("pooled") or {}).get("overall") or base.get("pooled") or {})
    return {
        "federated": {k: summary["final"].get(k) for k in ("balanced_accuracy", "accuracy", "macro_f1", "auroc")},
        "primary_model": summary.get("primary_model"), "rounds_completed": summary.get("rounds_completed"),
        "local_only_mean": sum(local) / len(local) if local else None,
        "local_only_best": max(local) if local else None,
        "pooled": pooled.get("balanced_accuracy") if isinstance(pooled, dict) else None,
    }


def _write_usage(path: Path, rows: list[dict]) -> None:
    """One CSV row per model call; the columns are ``UsageRow``'s fields (optional ones default to 0)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(UsageRow.__annotations__), restval=0)
        w.writeheader()
        w.writerows(rows)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else ("-" if x is None else str(x))


def render_markdown(r: dict[str, Any], curve: bool) -> str:
    lines = ["# FedAgentBench run", "", f"**Request:** {r['request']}", "",
             f"**Model:** {r['model_label']} · **guidance:** {r['guidance']} · **task:** {r['task_id'] or 'not a suite task (unscored)'}",
             "", f"**Scoring:** {r.get('scoring', '')}",
             "", "## Roles", "", "| role | passed | failure | explanation |", "|---|---|---|---|"]
    for role, s in r["roles"].items():
        verdict = (("ran" if s.get("success") else "failed") + " (not scored)") if s.get("scored") is False \
            else _fmt(s.get("success"))
        lines.append(f"| {role} | {verdict} | {s.get('failure_category') or ''} | "
                     f"{str(s.get('explanation', '')).replace('|', '/')[:200]} |")
    spec = r.get("task_spec") or {}
    if spec:
        classes = "; ".join(f"{c['name']} = {', '.join(c['includes'])}" for c in spec["target_classes"])
        lines += ["", "## Task", "", (f"{spec['modality']} / {spec['body_part']}: {classes}; implicit goals: "
                                      f"{', '.join(spec.get('implicit_goals', [])) or 'none'}")]
    lines += ["", "## Sites", "", "| site | selected | why | approved |", "|---|---|---|---|"]
    for site, sel in sorted((r.get("selections") or {}).items()):
        ok = (r.get("approvals") or {}).get(site, {}).get("approved")
        lines.append(f"| {site} | {', '.join(sel.get('selected', [])) or '-'} | {sel.get('reason', '')} | {_fmt(ok)} |")
    if r.get("preprocess"):
        lines += ["", "## Cleaning", "", "| site | organised | removed / skipped | final |", "|---|---|---|---|"]
        for site, p in sorted(r["preprocess"].items()):
            rem = ", ".join(f"{k} {v}" for k, v in sorted(p.get("removed", {}).items()) if v)
            lines.append(f"| {site} | {p['organized_images']} | {rem} | {p['final_images']} |")
    if r.get("harmonization"):
        lines += ["", "## Label maps", ""]
        for site, h in sorted(r["harmonization"].items()):
            m = ", ".join(f"{k} → {v or 'drop'}" for k, v in h["label_map"].items())
            lines.append(f"- **{site}**: {m} (counts {h['class_counts']})")
    if r.get("algorithm"):
        a = r["algorithm"]
        lines += ["", "## Algorithm", "", f"**{a['algorithm']}**: {a['reason']}"]
        if r.get("shares") is not None:
            lines += ["", f"**Leaves each site beyond model weights:** {privacy_note(r['shares'])}."]
    m = r.get("metrics") or {}
    if m:
        fed = m["federated"]
        lines += ["", "## Results (balanced accuracy on the sites' test splits)", "",
                  "| model | balanced accuracy |", "|---|---|",
                  f"| federated ({r['algorithm']['algorithm']}, {m['primary_model']}) | {_fmt(fed.get('balanced_accuracy'))} |",
                  f"| local-only, mean over sites | {_fmt(m.get('local_only_mean'))} |",
                  f"| local-only, best site | {_fmt(m.get('local_only_best'))} |",
                  f"| pooled (centralised) | {_fmt(m.get('pooled'))} |"]
    if curve:
        lines += ["", "![learning curve](learning_curve.png)"]
    lines += ["", "## Time and usage", "", "| phase | wall s |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r.get("phase_seconds", {}).items()]
    lines += ["", "| role | calls | input tokens | output tokens | tool calls | seconds | estimated |",
              "|---|---|---|---|---|---|---|"]
    for role, u in r.get("usage_by_role", {}).items():
        lines.append(f"| {role} | {int(u['calls'])} | {int(u['input_tokens'])} | {int(u['output_tokens'])} | "
                     f"{int(u['tool_calls'])} | {u['seconds']:.2f} | {int(u['estimated'])}/{int(u['calls'])} |")
    return "\n".join(lines) + "\n"
