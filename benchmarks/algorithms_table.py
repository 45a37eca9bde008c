"""Algorithms table: every registered FL algorithm against local-only and pooled, per environment.

For each environment (a modality and one of its tasks) it builds the environment, oracle-prepares
the task (clean images of the qualifying sites), then trains on the same splits and model: local-only
per site, pooled (centralised), and each registered algorithm (FedAvg first, so every other method's
time can be given relative to it). Balanced accuracy is the mean over the sites' test splits, of the
global model and of the personalised one (``-`` when the method keeps nothing personal). Seconds per
round are training plus aggregation (the engine's ``round_seconds``), without evaluation. A
benchmark, not a test.

Each environment gets ``<out>/algorithms_<modality>.csv`` and ``.md``, rewritten after every
algorithm, so a run cut short keeps what it finished. One failing algorithm is reported in the table
and does not stop the others.

Default: histopathology / histo-tumor-detection at scale 1.0, ``small-sites`` preset
(``fl_core.presets``), tiny CNN, 5 rounds, 64 px, one CPU thread.

Usage::

    python benchmarks/algorithms_table.py [--modality M --task T | --envs M:T M:T ...] [--scale S
        --rounds R --algorithms fedavg fedprox ... --preset default --out benchmarks/results]
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from algorithms.catalog import get_entry
from algorithms.registry import get_algorithm, list_algorithms
from envs.build import build
from envs.oracle import prepare_task
from fedagentbench.training import declare
from fl_core.baselines import run_baselines
from fl_core.config import BN_CALIBRATIONS, GLOBAL_POOLS, RunConfig
from fl_core.data import FederatedData
from fl_core.engine import Engine, load_data
from fl_core.presets import PRESETS, preset

log = logging.getLogger("algorithms_table")

COLUMNS = ("algorithm", "category", "shares", "global_balanced_accuracy", "personalised_balanced_accuracy",
           "seconds_per_round", "seconds_per_round_vs_fedavg")
HEADERS = ("algorithm", "category", "shares", "global bal. acc.", "personalised bal. acc.", "s / round",
           "s / round vs FedAvg")


@dataclass
class Table:
    """One environment's rows, written to CSV and Markdown after each addition."""

    title: str
    setup: str
    csv_path: Path
    md_path: Path
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.write()

    def write(self) -> None:
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.csv_path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)
        lines = [f"# {self.title}", "", self.setup, "", "| " + " | ".join(HEADERS) + " |",
                 "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |" for r in self.rows]
        lines += ["", *[f"- {n}" for n in self.notes]]
        self.md_path.write_text("\n".join(lines) + "\n")


def _fmt(x: object) -> str:
    if x is None or x == "":
        return "-"
    return f"{x:.3f}" if isinstance(x, float) else str(x).replace("|", "/")


def _order(names: list[str]) -> list[str]:
    """FedAvg first (the time reference), then the rest in the given order."""
    return (["fedavg"] if "fedavg" in names else []) + [n for n in names if n != "fedavg"]


def baseline_rows(cfg: RunConfig, data: FederatedData) -> list[dict]:
    """Local-only (mean and best site) and pooled rows; their time column is the total over rounds."""
    t = time.perf_counter()
    base = run_baselines(cfg, data)
    per_round = (time.perf_counter() - t) / cfg.rounds
    loc, poo = base["local"], base["pooled"]
    best = loc["best_client"]
    return [
        {"algorithm": "local-only, mean over sites", "category": "baseline", "shares": "nothing",
         "global_balanced_accuracy": loc["client_mean"]["balanced_accuracy"], "seconds_per_round": per_round},
        {"algorithm": f"local-only, best site ({best['client']})", "category": "baseline", "shares": "nothing",
         "global_balanced_accuracy": best["balanced_accuracy"]},
        {"algorithm": "pooled (centralised)", "category": "baseline", "shares": "all images",
         "global_balanced_accuracy": poo["client_mean"]["balanced_accuracy"]},
    ]


def algorithm_row(name: str, cfg: RunConfig, data: FederatedData, out: Path, fedavg_spr: float | None) -> dict:
    """Train ``name`` with its paper defaults and return its table row (``failed: ...`` on an error)."""
    entry = get_entry(name)
    row: dict = {"algorithm": name, "category": entry.category, "shares": ", ".join(entry.shares) or "weights only"}
    try:
        run_cfg = declare(cfg.replace(algorithm=name, algorithm_params={}, out_dir=str(out / name)))
        r = Engine(run_cfg, data, get_algorithm(name)).run()
    except Exception as exc:  # one broken algorithm must not hide the others
        log.exception("%s failed", name)
        return {**row, "global_balanced_accuracy": f"failed: {type(exc).__name__}: {str(exc)[:120]}"}
    spr = mean(h["round_seconds"] for h in r.history)
    personal = r.personal_metrics["client_mean"]["balanced_accuracy"] if r.has_personal else None
    return {**row, "algorithm": name + (" *" if r.primary_model == "personal" else ""),
            "global_balanced_accuracy": r.global_metrics["client_mean"]["balanced_accuracy"],
            "personalised_balanced_accuracy": personal, "seconds_per_round": spr,
            "seconds_per_round_vs_fedavg": spr / fedavg_spr if fedavg_spr else None}


def run_environment(modality: str, task: str, args: argparse.Namespace, names: list[str]) -> Table:
    """Build ``modality``, prepare ``task`` and fill its table (written as it goes)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = build(modality, Path(tmp) / "env", seed=args.seed, scale=args.scale)
        folders = prepare_task(env, task, Path(tmp) / "prepared", size=64)
        cfg = preset(args.preset, folders, model=args.model, rounds=args.rounds, seed=args.seed,
                     num_threads=args.threads, out_dir=str(Path(tmp) / "run"), resume=False, progress=False,
                     bn_calibration=args.bn_calibration, global_pool=args.global_pool)
        data = load_data(cfg)
        sizes = ", ".join(f"{c.name} {len(c.train)}" for c in data.clients)
        setup = (f"{modality} / {task}, scale {args.scale}, seed {args.seed}: {len(data.clients)} sites (train "
                 f"images: {sizes}), {data.num_classes} classes; {args.preset} preset, {cfg.model}, {cfg.rounds} "
                 f"rounds x {cfg.local_epochs} local epoch(s), batch {cfg.batch_size}, {cfg.optimizer} lr "
                 f"{cfg.lr}, {cfg.image_size} px, BatchNorm calibration {cfg.bn_calibration}, {args.threads} "
                 "CPU thread(s); every algorithm with its paper defaults.")
        table = Table(f"FL algorithms on {modality} ({task})", setup,
                      Path(args.out) / f"algorithms_{modality}.csv", Path(args.out) / f"algorithms_{modality}.md")
        table.notes = ["Balanced accuracy: mean over the sites' test splits, after the last round.",
                       "`*`: the method's primary model is the personalised one; `-`: it keeps nothing personal.",
                       ("s / round: training plus aggregation, without evaluation; the local-only row gives the "
                        "baselines' (local-only and pooled) time per round together."),
                       "shares: what leaves a site beyond model weights (the catalog's `shares`), a privacy cost."]
        log.info("%s", setup)
        for row in baseline_rows(cfg, data):
            table.add(row)
        fedavg_spr = None
        for name in _order(names):
            row = algorithm_row(name, cfg, data, Path(tmp) / "runs", fedavg_spr)
            if name == "fedavg" and isinstance(row.get("seconds_per_round"), float):
                fedavg_spr = row["seconds_per_round"]
                row["seconds_per_round_vs_fedavg"] = 1.0
            table.add(row)
            log.info("%s: %s", name, {k: _fmt(v) for k, v in row.items() if k in COLUMNS[3:]})
        return table


def _environments(args: argparse.Namespace) -> list[tuple[str, str]]:
    if not args.envs:
        return [(args.modality, args.task)]
    out = []
    for spec in args.envs:
        modality, sep, task = spec.partition(":")
        if not sep or not modality or not task:
            raise SystemExit(f"--envs takes MODALITY:TASK pairs, e.g. mri:mri-tumor-type-skewed; got {spec!r}")
        out.append((modality, task))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modality", default="histopathology")
    ap.add_argument("--task", default="histo-tumor-detection")
    ap.add_argument("--envs", nargs="+", metavar="MODALITY:TASK", help="several environments, one table each")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--preset", default="small-sites", choices=sorted(PRESETS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="tiny_cnn")
    ap.add_argument("--global-pool", default="avg", choices=GLOBAL_POOLS)
    ap.add_argument("--algorithms", nargs="+", help="default: every registered algorithm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bn-calibration", default="none", choices=BN_CALIBRATIONS,
                    help="local: sites re-estimate the global model's BatchNorm statistics before evaluating it")
    ap.add_argument("--out", default="benchmarks/results", help="folder for the CSV and Markdown tables")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("fl_core", "envs", "algorithms"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    names = args.algorithms or list_algorithms()
    unknown = [n for n in names if n not in list_algorithms()]
    if unknown:
        raise SystemExit(f"unknown algorithm(s) {unknown}; registered: {', '.join(list_algorithms())}")
    for modality, task in _environments(args):
        table = run_environment(modality, task, args, names)
        print(table.md_path.read_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
