"""FL engine throughput against pooled centralised training (a benchmark, not a test).

Trains FedAvg with each engine asked for (in-process, Flower simulation, Flower deployment on
127.0.0.1) and then one pooled model on the union of the same training splits for the same total
epochs (``rounds * local_epochs``), same model, batch size and optimizer, and prints images/s of each
and their ratio to pooled training. The FL figure counts everything the engine does in a round
except evaluation (state copies, hooks, aggregation, and for Flower the messages and processes);
evaluation is reported apart. Targets: in-process >= 0.9 of pooled; deployment >= 0.8 of in-process.

For Flower it also prints the fixed cost per round (train + evaluate exchange minus the clients'
training time, measured on data so small that training takes almost nothing), with Flower's own
waits and with this project's tuning (see ``fl_core.flower.options``), the start-up time of a
SuperLink plus N SuperNodes (until every node has registered), and the peak resident memory of
each node's process group (SuperNode, SuperExec, fork server, ClientApp processes).

Usage::

    python benchmarks/fl_throughput.py                       # synthetic shape folders, in-process only
    python benchmarks/fl_throughput.py --engine inprocess flower-simulation flower-deployment
    python benchmarks/fl_throughput.py --engine flower-deployment --startup-nodes 2 4 8 --fixed-cost
    python benchmarks/fl_throughput.py --data site0 site1 ... --image-size 64 --rounds 5
"""

from __future__ import annotations

import argparse
import logging
import os
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
from fl_core.flower.bench import fixed_cost, flower_rate, startup_seconds
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
    ap.add_argument("--engine", nargs="+", default=["inprocess"],
                    choices=("inprocess", "flower-simulation", "flower-deployment"))
    ap.add_argument("--startup-nodes", nargs="*", type=int, default=[], metavar="N",
                    help="also time a SuperLink plus N SuperNodes coming up, for each N")
    ap.add_argument("--fixed-cost", action="store_true",
                    help="also measure the Flower engines' fixed cost per round, tuned and with Flower's defaults")
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
        load_before = os.getloadavg()
        fl_rates, eval_s, central_rates = [], 0.0, []
        for _ in range(args.repeats):
            result = Engine(cfg, data, get_algorithm("fedavg")).run()
            images = sum(h["train_images"] for h in result.history)
            fl_rates.append(images / sum(h["round_seconds"] for h in result.history))
            eval_s = sum(h["eval_seconds"] for h in result.history)
            _, stats = train_centralised(cfg, data, pooled(data), 20_000)
            central_rates.append(stats.images / stats.seconds)
        rates = {"inprocess": (max(fl_rates), eval_s, None)}
        for engine in (e for e in args.engine if e != "inprocess"):
            rates[engine] = flower_rate(cfg.replace(engine=engine, out_dir=str(Path(tmp) / engine)),
                                        get_algorithm("fedavg"), Path(tmp))
        extra = []
        if args.fixed_cost:
            for engine in (e for e in args.engine if e != "inprocess"):
                for tuned in (True, False) if engine == "flower-deployment" else (True,):
                    extra.append((engine, tuned, fixed_cost(engine, get_algorithm("fedavg"),
                                                            Path(tmp) / f"fixed-{engine}-{tuned}", tuned)))
        startups = {n: startup_seconds(n, Path(tmp) / f"startup-{n}") for n in args.startup_nodes}
        load_after = os.getloadavg()
    central = max(central_rates)
    n_train = sum(len(c.train) for c in data.clients)
    print(f"data: {len(data.clients)} clients, {n_train} training images, {data.num_classes} classes, "
          f"{args.image_size}px, model {args.model}, {args.rounds} rounds x {args.local_epochs} local epochs, "
          f"batch {args.batch_size}, {args.threads} thread(s), {args.device}")
    print(f"machine: {os.cpu_count()} cores, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"pooled centralised:            {central:8.1f} images/s")
    inproc = rates["inprocess"][0]
    for engine, (rate, ev, rss) in rates.items():
        line = (f"FedAvg {engine + ':':19s}   {rate:8.1f} images/s   ratio to pooled {rate / central:6.3f}   "
                f"to in-process {rate / inproc:6.3f}   (+ {ev:.2f} s evaluation)")
        if rss:
            line += f"   peak RSS per node {', '.join(f'{v:.0f}' for v in rss)} MiB"
        print(line)
    for engine, tuned, (per_round, rounds) in extra:
        print(f"fixed cost per round, {engine} {'tuned' if tuned else 'Flower defaults'}: {per_round:.2f} s "
              f"(train + evaluate exchange, mean of rounds 2..{rounds}, training time subtracted)")
    for n, secs in startups.items():
        print(f"start-up, SuperLink + {n} SuperNodes registered: {secs:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
