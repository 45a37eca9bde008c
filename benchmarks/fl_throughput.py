"""FL engine throughput against pooled centralised training (a benchmark, not a test).

Trains FedAvg with the in-process engine and then one pooled model on the union of the same
training splits for the same total epochs (``rounds * local_epochs``), same model, batch size and
optimizer, and prints images/s of both and their ratio. The FL figure counts everything the engine
does in a round except evaluation (state copies, hooks, aggregation); evaluation is reported apart.
Target: ratio >= 0.9.

Usage::

    python benchmarks/fl_throughput.py                       # synthetic shape folders
    python benchmarks/fl_throughput.py --data site0 site1 ... --image-size 64 --rounds 5
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from algorithms.registry import get_algorithm
from fl_core import RunConfig
from fl_core.baselines import train_centralised
from fl_core.data import pooled
from fl_core.engine import Engine, load_data
from fl_core.testing import make_shape_folders


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", help="prepared client folders (default: synthetic shapes)")
    ap.add_argument("--clients", type=int, default=4, help="synthetic clients")
    ap.add_argument("--per-class", type=int, default=100, help="synthetic images per class per client")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--model", default="tiny_cnn")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--local-epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="alternate FL/pooled runs this many times, keep best")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        dirs = args.data or make_shape_folders(tmp, clients=args.clients, per_class=args.per_class,
                                               size=args.image_size, seed=0)
        cfg = RunConfig(data_dirs=tuple(dirs), algorithm="fedavg", model=args.model, image_size=args.image_size,
                        rounds=args.rounds, local_epochs=args.local_epochs, batch_size=args.batch_size,
                        num_threads=args.threads, device=args.device, out_dir=str(Path(tmp) / "run"),
                        resume=False, progress=False)
        data = load_data(cfg)
        fl_rates, eval_s, central_rates = [], 0.0, []
        for _ in range(args.repeats):
            result = Engine(cfg, data, get_algorithm("fedavg")).run()
            images = sum(h["train_images"] for h in result.history)
            fl_rates.append(images / sum(h["round_seconds"] for h in result.history))
            eval_s = sum(h["eval_seconds"] for h in result.history)
            _, stats = train_centralised(cfg, data, pooled(data), 20_000)
            central_rates.append(stats.images / stats.seconds)
    fl, central = max(fl_rates), max(central_rates)
    n_train = sum(len(c.train) for c in data.clients)
    print(f"data: {len(data.clients)} clients, {n_train} training images, {data.num_classes} classes, "
          f"{args.image_size}px, model {args.model}, {args.rounds} rounds x {args.local_epochs} local epochs, "
          f"batch {args.batch_size}, {args.threads} thread(s), {args.device}")
    print(f"FedAvg (in-process engine): {fl:8.1f} images/s   (+ {eval_s:.2f} s evaluation, not counted)")
    print(f"pooled centralised:         {central:8.1f} images/s")
    print(f"ratio FL / centralised:     {fl / central:8.3f}   (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
