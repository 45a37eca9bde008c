"""``fedagentbench eval``: run the benchmark (models x suite tasks x trials), list suites and models, or
rewrite the summaries of a results folder.

    fedagentbench eval --models scripted,gpt-4.1 --suite smoke --trials 3 --jobs 2 --out runs/bench
    fedagentbench eval list [--suite full]
    fedagentbench eval models
    fedagentbench eval report --out runs/bench
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="run the benchmark; 'eval list' shows suites, 'eval models' the registry")
    p.add_argument("action", nargs="?", default="run", choices=["run", "list", "models", "report"],
                   help="run (default), list suites/tasks, list models, or rewrite summaries of --out")
    p.add_argument("--models", default="scripted", help="comma-separated registry names ('all-llms': the 24 LLMs)")
    p.add_argument("--endpoint", action="append", default=[], metavar="NAME=MODEL@URL",
                   help="add an OpenAI-compatible server as model NAME (key from NAME_API_KEY); repeatable")
    p.add_argument("--suite", default=None, help="suite name (evals/suites) or a .yaml path; run default: smoke")
    p.add_argument("--tasks", default=None, help="only these task ids of the suite (comma-separated)")
    p.add_argument("--trials", type=int, default=1, help="trials per task (pass^k is over them)")
    p.add_argument("--guidance", default="both", choices=["both", "fine-grained", "goal-oriented"])
    p.add_argument("--jobs", type=int, default=2, help="parallel worker processes")
    p.add_argument("--scale", type=float, default=None, help="override the suite's environment scale")
    p.add_argument("--out", default="runs/eval", help="results folder (rerun the same command to resume)")
    p.add_argument("--env-cache", default=None, help="where built environments are kept (default OUT/envs)")
    p.add_argument("--reference-algorithms", nargs="+", default=None, metavar="ALGORITHM",
                   help="algorithms of each task's reference table (default: the suite's, else all registered)")
    p.add_argument("--keep-envs", action="store_true", help="keep each trial's environment copy (disk heavy)")
    rec = p.add_mutually_exclusive_group()
    rec.add_argument("--record", default=None, metavar="DIR", help="store every model response in DIR")
    rec.add_argument("--replay", default=None, metavar="DIR",
                     help="serve responses recorded in DIR (no network, no keys); a miss is reported loudly")
    p.set_defaults(func=_eval)


def _eval(args: argparse.Namespace) -> int:
    return {"run": _run, "list": _list, "models": _models, "report": _report}[args.action](args)


def _list(args: argparse.Namespace) -> int:
    from evals.suite import list_suites, load_suite

    console = Console()
    for name in [args.suite] if args.suite else list_suites():
        suite = load_suite(name)
        entries = suite.entries(args.guidance, args.scale)
        table = Table(title=f"suite {suite.name}: {len(entries)} tasks (scale {args.scale or suite.scale})")
        for col in ("task", "modality", "guidance", "hard kinds", "request"):
            table.add_column(col, overflow="fold")
        for e in entries:
            table.add_row(e.task_id, e.modality, e.guidance, ", ".join(e.tags) or "-", e.request)
        console.print(table)
        counts: dict[tuple[str, str], int] = {}
        for e in entries:
            counts[(e.modality, e.guidance)] = counts.get((e.modality, e.guidance), 0) + 1
        console.print("tasks per modality and style: " + ", ".join(f"{m}/{g} {n}" for (m, g), n in
                                                                    sorted(counts.items())))
    return 0


def _models(args: argparse.Namespace) -> int:
    from evals.models import REGISTRY, parse_endpoint

    table = Table(title="models")
    for col in ("name", "kind", "provider", "model id", "weights", "size", "$/1M in", "$/1M out", "key"):
        table.add_column(col)
    for m in [*REGISTRY.values(), *map(parse_endpoint, args.endpoint)]:
        weights = "-" if m.open_weights is None else ("open" if m.open_weights else "proprietary")
        key = "not needed" if not m.key_env else (f"missing {m.key_env}" if m.missing_key() else f"{m.key_env} set")
        table.add_row(m.name, m.kind, m.provider, m.model_id, weights, m.size_class,
                      "-" if m.price_in is None else f"{m.price_in:.2f}",
                      "-" if m.price_out is None else f"{m.price_out:.2f}", key)
    Console().print(table)
    return 0


def _report(args: argparse.Namespace) -> int:
    from evals.results import load_rows
    from evals.tables import write_summaries

    out = Path(args.out)
    rows = load_rows(out / "results.jsonl")
    if not rows:
        raise FileNotFoundError(f"no results in {out / 'results.jsonl'}; run 'fedagentbench eval --out {out}' first")
    write_summaries(out, rows)
    Console().print((out / "summary.md").read_text(), markup=False, soft_wrap=True)
    return 0


def _run(args: argparse.Namespace) -> int:
    from evals.models import resolve
    from evals.runner import EvalConfig, run_eval
    from evals.suite import load_suite

    console = Console()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    models, _skipped = resolve(names, args.endpoint, need_keys=not args.replay)  # it logs each skip
    if not models:
        console.print("no model to run (every requested model lacks its key)")
        return 1
    suite = load_suite(args.suite or "smoke")
    only = {t.strip() for t in args.tasks.split(",")} if args.tasks else None
    cfg = EvalConfig(suite=suite, models=models, out=Path(args.out), trials=args.trials, guidance=args.guidance,
                     jobs=args.jobs, scale=args.scale, only=only,
                     record=Path(args.record) if args.record else None,
                     replay=Path(args.replay) if args.replay else None,
                     env_cache=Path(args.env_cache) if args.env_cache else None, keep_envs=args.keep_envs,
                     reference_algorithms=args.reference_algorithms)
    res = run_eval(cfg, console)
    console.print(f"ran {res.ran} task-trial(s), skipped {res.skipped} already done; "
                  f"{res.harness_errors} with harness errors, {res.replay_misses} with replay misses")
    console.print(f"results: {cfg.out / 'results.jsonl'}; summary: {cfg.out / 'summary.md'}")
    if res.replay_misses:
        console.print("[red]replay missed: those task-trials are unscored; see their explanation in results.jsonl[/]")
        return 3
    return 0
