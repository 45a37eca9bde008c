"""A suite's reference tables beside one model's S3/S4 verdicts on them, as a markdown table.

Reads the tables an eval computed (``--env-cache``, the suite's training settings) and the eval's
``results.jsonl`` (``--out``), and prints one row per task: the best algorithm, the margin S3 was
judged with, the pooled and local-only baselines, how many global models sit at chance, how many
members of the task's old hand-written acceptable set fall outside the margin, and the model's pick
with its outcome and verdicts. A report, not a test: it trains nothing.

Usage::

    python benchmarks/reference_verdicts.py --suite full --env-cache ~/.cache/fedagentbench/envs-full \\
        --out ~/.cache/fedagentbench/runs/full_small [--model scripted] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evals.outcome_rules import table_noise
from evals.reference import load_reference, reference_settings
from evals.results import load_rows
from evals.suite import load_suite, template
from evals.trial import env_folder

#: A global model this close to chance (1 / classes) is counted as not having learnt.
AT_CHANCE = 0.02


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="full")
    ap.add_argument("--env-cache", type=Path, required=True, help="the eval's --env-cache")
    ap.add_argument("--out", type=Path, required=True, help="the eval's --out (results.jsonl)")
    ap.add_argument("--model", default="scripted")
    ap.add_argument("--scale", type=float, default=None, help="the eval's --scale (default: the suite's)")
    args = ap.parse_args(argv)

    suite = load_suite(args.suite)
    settings = reference_settings(suite.train.model_dump())
    rows = [r for r in load_rows(args.out / "results.jsonl") if r["model"] == args.model]
    verdict = {(r["task_id"], r["role"]): r for r in rows}
    s = settings
    print(f"Settings: {s.rounds} rounds x {s.local_epochs} local epochs, {s.optimizer} lr {s.lr:g}, batch "
          f"{s.batch_size}, {s.image_size} px, {s.model}, training seed {s.seed} (digest {s.digest()}).\n")
    print("| task | implied goal | best | margin used | pooled / local-only mean | global models at chance "
          "| old set outside | pick: outcome, S3 | S4 run | calibration s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    missing = []
    for t in suite.tasks:
        scale = args.scale or t.scale or suite.scale
        table = load_reference(env_folder(args.env_cache, t.modality, t.seed, scale), t.task, settings)
        if table is None:
            missing.append(t.task)
            continue
        tpl = template(t.modality, t.task)
        margin = max(suite.judged_by.s3_margin, table_noise(table))  # what S3 is judged with
        best, top = table.best()
        chance = 1 / len(tpl.target_classes)
        flat = sum(1 for r in table.rows.values() if r.global_bacc is not None and r.global_bacc <= chance + AT_CHANCE)
        old = tpl.acceptable_algorithms
        outside = sum(1 for n in old if (o := table.outcome(n)) is not None and o < top - margin)
        b = table.baselines
        s3, s4 = verdict.get((t.task, "S3")), verdict.get((t.task, "S4"))
        pick = "-"
        if s3 and s3.get("algorithm"):
            o = table.outcome(s3["algorithm"])
            pick = f"{s3['algorithm']} {o:.3f}, {'pass' if s3['passed'] else 'FAIL'}" if o is not None else s3["algorithm"]
        run = "-"
        if s4 and s4.get("fed_bacc") is not None:
            run = f"{s4['fed_bacc']:.3f}, {'pass' if s4['passed'] else 'FAIL'}"
        print(f"| {t.task} | {tpl.implicit_goal} | {best} {top:.3f} | {margin:.3f} | "
              f"{b.pooled:.2f} / {b.local_mean:.2f} | {flat}/{len(table.rows)} | {outside}/{len(old)} | {pick} | "
              f"{run} | {table.seconds:.0f} |" if b else f"| {t.task} | (no baselines) |")
    if missing:
        print(f"\nNot calibrated with these settings: {', '.join(missing)}", file=sys.stderr)
    passed = [r for r in rows if r["passed"]]
    print(f"\n{args.model}: {len(passed)} of {len(rows)} role verdicts pass.")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
