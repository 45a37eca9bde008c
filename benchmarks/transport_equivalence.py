"""Transport equivalence: every algorithm in memory and through bytes, side by side.

For each registered algorithm, trains the same federation twice on the same seed: once with the
direct transport (objects in memory, the server's instance on every client) and once with the
serialising transport (every exchange packed to bytes and back, a fresh instance per client, as
under Flower). Prints the final balanced accuracy of both runs, whether the final weights are
bit-identical, the bytes per round each way, and the seconds of both. A benchmark, not a test
(``check_serialising_transport_equals_direct`` is the test).

Usage::

    python benchmarks/transport_equivalence.py [--rounds 3 --clients 3 --per-class 20 --algorithms fedavg ...]
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
from fl_core import RunConfig
from fl_core.engine import Engine, load_data
from fl_core.testing import make_shape_folders
from fl_core.transport import SerialisingTransport


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--algorithms", nargs="*")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        dirs = make_shape_folders(Path(tmp) / "d", clients=args.clients, per_class=args.per_class,
                                  size=args.image_size, seed=1)
        base = RunConfig(data_dirs=tuple(dirs), rounds=args.rounds, image_size=args.image_size, batch_size=16,
                         fraction_fit=0.7, seed=args.seed, out_dir=str(Path(tmp) / "o"), progress=False, resume=False)
        data = load_data(base)
        print(f"{args.clients} clients x {args.per_class}/class, {args.image_size}px shapes, tiny CNN, "
              f"{args.rounds} rounds, seed {args.seed}")
        print(f"{'algorithm':<12} {'bal-acc direct':>14} {'bal-acc bytes':>13} {'same weights':>12} "
              f"{'KB down/rnd':>11} {'KB up/rnd':>9} {'s direct':>8} {'s bytes':>7}")
        for name in args.algorithms or list_algorithms():
            cfg = base.replace(algorithm=name)
            t = time.perf_counter()
            e1 = Engine(cfg.replace(out_dir=str(Path(tmp) / name / "direct")), data, get_algorithm(name))
            r1 = e1.run(reports=False)
            t1 = time.perf_counter() - t
            wire = SerialisingTransport()
            t = time.perf_counter()
            e2 = Engine(cfg.replace(out_dir=str(Path(tmp) / name / "bytes")), data, get_algorithm(name), wire)
            r2 = e2.run(reports=False)
            t2 = time.perf_counter() - t
            same = all(torch.equal(e1.global_state[k], e2.global_state[k]) for k in e1.global_state)
            print(f"{name:<12} {r1.final['balanced_accuracy']:>14.4f} {r2.final['balanced_accuracy']:>13.4f} "
                  f"{'yes' if same else 'NO':>12} {wire.bytes_down / 1e3 / args.rounds:>11.1f} "
                  f"{wire.bytes_up / 1e3 / args.rounds:>9.1f} {t1:>8.2f} {t2:>7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
