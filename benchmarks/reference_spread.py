"""Reference tables of a suite's tasks over several training seeds: the seed-to-seed spread and a margin.

For every task of the suite (its env seed and scale) it builds the environment, calibrates the task
(``envs.calibrate``) once per training seed (RunConfig.seed: the train/val/test splits and the model's
initialisation), and reports per algorithm the outcome's range over seeds. The proposed margin is a
high percentile (default 90th) of the per-(task, algorithm) spread: an algorithm within it of the
best cannot be told apart from the best by re-running. Also counts the members of the old hand-written
acceptable sets (the task's ``acceptable_algorithms``) that fall outside that margin. A benchmark,
not a test; one process, one torch thread.

Usage::

    python benchmarks/reference_spread.py [--suite smoke --tasks T ... --seeds 0 1 2 --rounds R
        --local-epochs E --image-size 32 --algorithms a b ... --out benchmarks/results]
"""

from __future__ import annotations

import argparse
import csv
import logging
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from envs.calibrate import calibrate
from evals.reference import reference_settings
from evals.suite import load_suite
from evals.trial import ensure_env

log = logging.getLogger("reference_spread")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="smoke")
    ap.add_argument("--tasks", nargs="+", help="default: every task of the suite")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--local-epochs", type=int)
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--scale", type=float, help="default: the suite's")
    ap.add_argument("--algorithms", nargs="+", help="default: every registered algorithm")
    ap.add_argument("--percentile", type=float, default=90.0)
    ap.add_argument("--cache", default="runs/reference_envs")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("fl_core", "envs", "algorithms"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(1)
    suite = load_suite(args.suite)
    train = {**suite.train.model_dump(), **{k: v for k, v in (("rounds", args.rounds), ("local_epochs", args.local_epochs),
                                                 ("image_size", args.image_size)) if v is not None}}
    scale = args.scale if args.scale is not None else suite.scale
    rows, spreads, lines = [], [], []
    from envs.build import load
    for entry in suite.tasks:
        if args.tasks and entry.task not in args.tasks:
            continue
        env_dir = ensure_env(Path(args.cache).resolve(), entry.modality, entry.seed,
                             args.scale if args.scale is not None else (entry.scale or suite.scale))
        tables, wall, cpu = [], time.perf_counter(), _cpu()
        for seed in args.seeds:
            t = calibrate(env_dir, entry.task, reference_settings({**train, "seed": seed}), args.algorithms)
            tables.append(t)
            log.info("%s seed %d: best %s, baselines %s", entry.task, seed, t.best(), t.baselines)
        wall, cpu = time.perf_counter() - wall, _cpu() - cpu
        names = tables[0].algorithms
        means = {}
        for n in names:
            outs = [t.outcome(n) for t in tables if t.outcome(n) is not None]
            if not outs:
                continue
            means[n] = float(np.mean(outs))
            spread = max(outs) - min(outs)
            spreads.append(spread)
            rows.append({"task": entry.task, "algorithm": n, "mean": means[n], "min": min(outs), "max": max(outs),
                         "spread": spread, "seconds": float(np.mean([t.rows[n].seconds for t in tables]))})
        best = max(means.items(), key=lambda p: (p[1], p[0])) if means else ("-", float("nan"))
        b = tables[0].baselines
        old = load(env_dir).key.tasks[entry.task].acceptable_algorithms
        lines.append((entry.task, best, b, wall, cpu, means, old))
    margin = float(np.percentile(spreads, args.percentile)) if spreads else float("nan")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"reference_{args.suite}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["task"])
        w.writeheader()
        w.writerows(rows)
    md = [f"# Reference tables, suite {args.suite}", "",
          f"scale {scale}, settings {reference_settings(train).model_dump()}, training seeds {args.seeds}",
          (f"(seed: splits and initialisation). Margin = {args.percentile:.0f}th percentile of the per-(task, "
          f"algorithm) spread over seeds = **{margin:.3f}**. Times under CPU contention (2 shared cores)."), "",
          "| task | best (mean over seeds) | local mean / best | pooled | old-set outside margin | wall s | CPU s |",
          "|---|---|---|---|---|---|---|"]
    for task, best, b, wall, cpu, means, old in lines:
        outside = [a for a in old if a in means and best[1] - means[a] > margin + 1e-12]
        md.append(f"| {task} | {best[0]} {best[1]:.3f} | {b.local_mean:.3f} / {b.local_best:.3f} | {b.pooled:.3f} | "
                  f"{len(outside)}/{len(old)} {', '.join(outside)} | {wall:.0f} | {cpu:.0f} |")
    (out / f"reference_{args.suite}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
