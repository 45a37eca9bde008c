"""Algorithms table: every registered FL algorithm against local-only and pooled on one environment.

Builds (or reuses) one modality's environment, oracle-prepares one task (clean images of the
qualifying sites), then trains, on the same splits and model: local-only per site, pooled
(centralised), and each registered algorithm; prints final balanced accuracy on the pooled test
split of the global and the personalised model, with seconds. A benchmark, not a test.

Default: histopathology / histo-tumor-detection at scale 1.0 (5 qualifying sites), ``small-sites``
preset (``fl_core.presets``), tiny CNN, 5 rounds, 64 px, one CPU thread.

Usage::

    python benchmarks/algorithms_table.py [--modality M --task T --scale S --rounds R
                                           --algorithms fedavg fedprox ... --preset default]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from algorithms.registry import get_algorithm, list_algorithms
from envs.build import build
from envs.oracle import prepare_task
from fl_core.baselines import run_baselines
from fl_core.config import BN_CALIBRATIONS, GLOBAL_POOLS
from fl_core.engine import Engine, load_data
from fl_core.presets import PRESETS, preset


def _row(name: str, glob: float, pers: float | None, seconds: float) -> str:
    p = "-" if pers is None else f"{pers:.3f}"
    return f"{name:<28}{glob:>10.3f}{p:>14}{seconds:>9.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modality", default="histopathology")
    ap.add_argument("--task", default="histo-tumor-detection")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--env", help="an already built environment folder (skips building)")
    ap.add_argument("--preset", default="small-sites", choices=sorted(PRESETS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="tiny_cnn")
    ap.add_argument("--global-pool", default="avg", choices=GLOBAL_POOLS)
    ap.add_argument("--algorithms", nargs="+", help="default: every registered algorithm")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bn-calibration", default="none", choices=BN_CALIBRATIONS,
                    help="local: sites re-estimate the global model's BatchNorm statistics before evaluating it")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        if args.env:
            from envs.build import load
            env = load(args.env)
        else:
            env = build(args.modality, Path(tmp) / "env", seed=args.seed, scale=args.scale)
        folders = prepare_task(env, args.task, Path(tmp) / "prepared", size=64)
        cfg = preset(args.preset, folders, model=args.model, rounds=args.rounds, seed=args.seed,
                     num_threads=args.threads, out_dir=str(Path(tmp) / "run"), resume=False, progress=False,
                     bn_calibration=args.bn_calibration, global_pool=args.global_pool)
        data = load_data(cfg)
        sizes = ", ".join(f"{c.name}:{len(c.train)}" for c in data.clients)
        print(f"{args.modality} / {args.task}, scale {args.scale}: {len(data.clients)} sites (train {sizes}), "
              f"{data.num_classes} classes; {args.preset} preset, {cfg.model}, {cfg.rounds} rounds x "
              f"{cfg.local_epochs} local epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}, "
              f"BatchNorm calibration {cfg.bn_calibration}, {cfg.global_pool} pooling")
        print(f"{'method':<28}{'global':>10}{'personalised':>14}{'seconds':>9}")
        t = time.perf_counter()
        base = run_baselines(cfg, data)
        secs = time.perf_counter() - t
        loc, poo = base["local"], base["pooled"]
        print(_row(f"local-only best ({loc['best_client']['client']})", loc["best_client"]["balanced_accuracy"],
                   None, secs))
        print(_row("local-only mean over sites", loc["client_mean"]["balanced_accuracy"], None, secs))
        print(_row("local-only all (pooled test)", loc["overall"]["balanced_accuracy"], None, secs))
        print(_row("pooled (centralised)", poo["overall"]["balanced_accuracy"], None, secs))
        for name in args.algorithms or list_algorithms():
            t = time.perf_counter()
            try:
                r = Engine(cfg.replace(algorithm=name, out_dir=str(Path(tmp) / name)), data, get_algorithm(name)).run()
            except Exception as exc:  # noqa: BLE001 - one broken algorithm must not hide the others
                print(f"{name:<28}  failed: {type(exc).__name__}: {exc}")
                continue
            g = r.global_metrics["overall"]["balanced_accuracy"]
            # the engine reuses the global metrics when an algorithm keeps no personalised state
            p = None if r.personal_metrics is r.global_metrics else r.personal_metrics["overall"]["balanced_accuracy"]
            print(_row(name + (" *" if r.primary_model == "personal" else ""), g, p, time.perf_counter() - t),
                  flush=True)
        print("local-only/pooled seconds are the baselines' total; * primary model is the personalised one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
