"""``fedagentbench train``: federated training on prepared client folders, with a results table."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from rich.console import Console
from rich.table import Table

from fl_core.config import BN_CALIBRATIONS, ENGINES, GLOBAL_POOLS

_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "auroc")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="federated training on prepared client folders (one per client)")
    p.add_argument("--data", nargs="+", metavar="DIR",
                   help="one prepared folder per client: DIR/<class_name>/<image> (required to train)")
    p.add_argument("--algorithm", default="fedavg", help="registry name (see --list-algorithms)")
    p.add_argument("--list-algorithms", action="store_true",
                   help="list every algorithm with its category and hyper-parameters, then exit")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="algorithm hyper-parameter, e.g. --param mu=0.1 (repeatable; VALUE is JSON)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--model", default="tiny_cnn", help="tiny_cnn or a timm name (resnet18, ...)")
    p.add_argument("--global-pool", default="avg", choices=GLOBAL_POOLS,
                   help="pooling before the classifier; catavgmax keeps small lesions (MRI tumours) visible")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--in-chans", type=int, default=3, choices=(1, 3))
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"))
    p.add_argument("--fraction-fit", type=float, default=1.0)
    p.add_argument("--min-clients", type=int, default=1)
    p.add_argument("--patience", type=int, default=0, help="early-stopping patience in rounds (0: off)")
    p.add_argument("--bn-calibration", default="none", choices=BN_CALIBRATIONS,
                   help="local: each client re-estimates the global model's BatchNorm statistics on its own "
                        "training images before evaluating it (helps when sites' scanners differ)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default="runs/train", help="reports and checkpoints; a checkpoint there is resumed")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out holds a checkpoint")
    p.add_argument("--baselines", action="store_true", help="also train local-only and pooled baselines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--engine", default="inprocess", choices=ENGINES,
                   help="inprocess: every site in this process; flower-simulation: Flower's simulation runtime; "
                        "flower-deployment: a Flower SuperLink and one SuperNode process per site on 127.0.0.1")
    p.set_defaults(func=_train)


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r}: write KEY=VALUE, e.g. --param mu=0.1")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _fmt(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _list_algorithms() -> int:
    from algorithms.catalog import entries

    table = Table(title="FL algorithms (--algorithm NAME, --param KEY=VALUE)")
    for col in ("name", "category", "hyper-parameters (defaults)", "full name"):
        table.add_column(col)
    for e in entries():
        params = ", ".join(f"{k}={v!r}" for k, v in e.hyperparameters.items()) or "-"
        table.add_row(e.name, e.category, params, e.full_name)
    Console().print(table)
    return 0


def _train(args: argparse.Namespace) -> int:
    from fedagentbench.training import algorithm_for, check_algorithm, declare
    from fl_core import RunConfig
    from fl_core import run as run_instance

    if args.list_algorithms:
        return _list_algorithms()
    if not args.data:
        raise ValueError("--data is required: give one prepared folder per client (or use --list-algorithms)")

    params = _parse_params(args.param)
    check_algorithm(args.algorithm, params)  # names the valid algorithms / parameters; no image read yet
    cfg = RunConfig(
        data_dirs=tuple(args.data), algorithm=args.algorithm.strip().lower(), algorithm_params=params,
        model=args.model, global_pool=args.global_pool, image_size=args.image_size, in_chans=args.in_chans,
        rounds=args.rounds, local_epochs=args.local_epochs, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, fraction_fit=args.fraction_fit, min_clients=args.min_clients,
        early_stopping_patience=args.patience, bn_calibration=args.bn_calibration, seed=args.seed,
        device=args.device, num_threads=args.threads, out_dir=args.out, resume=not args.no_resume,
        progress=not args.quiet, engine=args.engine,
    )
    cfg = declare(cfg)  # the catalog's record of what leaves a client beyond weights, for summary.json
    algorithm = algorithm_for(cfg)  # unknown names and hyper-parameters fail here, before any data is read
    result = run_instance(cfg, algorithm, baselines=args.baselines)
    table = Table(title=f"{cfg.algorithm}: test metrics after round {result.rounds_completed}"
                  + (" (early stop)" if result.stopped_early else ""))
    table.add_column("model")
    table.add_column("client")
    for m in _METRICS:
        table.add_column(m, justify="right")
    for model, block in (("global", result.global_metrics), ("personalised", result.personal_metrics)):
        for name, m in zip(result.client_names, block["clients"]):
            table.add_row(model, name, *(_fmt(m[k]) for k in _METRICS))
        table.add_row(model, "[b]all (pooled)[/b]", *(_fmt(block["overall"][k]) for k in _METRICS))
    if result.baselines:
        loc, poo = result.baselines["local"], result.baselines["pooled"]
        table.add_row("local-only", "mean over sites", *(_fmt(loc["client_mean"][k]) for k in _METRICS))
        table.add_row("local-only", f"best: {loc['best_client']['client']}",
                      *(_fmt(loc["best_client"][k]) for k in _METRICS))
        table.add_row("pooled", "all (pooled)", *(_fmt(poo["overall"][k]) for k in _METRICS))
    console = Console()
    console.print(table)
    console.print(f"primary model: {result.primary_model}; engine: {cfg.engine}; reports in {result.out_dir}")
    if result.skipped_count:
        console.print(f"[yellow]skipped {result.skipped_count} unreadable image(s)[/] (listed in summary.json):")
        for name, files in zip(result.client_names, result.skipped_images):
            for f in files[:5]:
                console.print(f"  {name}: {f}")
            if len(files) > 5:
                console.print(f"  {name}: ... and {len(files) - 5} more")
    return 0
