"""Build time, disk size and file counts of each modality's environment (prints a table).

Usage: python benchmarks/env_build.py [--scale 1.0] [--seed 0] [--out /tmp/envbench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from envs.build import build
from envs.concepts import MODALITIES
from envs.readonly import make_writable
from envs.summary import totals


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/envbench")
    args = p.parse_args()
    out = Path(args.out)
    print(f"{'modality':15} {'sites':>5} {'tasks':>5} {'clean img':>9} {'files':>6} {'MB':>6} {'seconds':>8}")
    for m in MODALITIES:
        start = time.perf_counter()
        env = build(m, out / m, seed=args.seed, scale=args.scale, force=True)
        seconds = time.perf_counter() - start
        roles = totals(env)
        print(f"{m:15} {len(env.key.sites):5d} {len(env.key.tasks):5d} {roles.get('image', 0):9d} "
              f"{sum(roles.values()):6d} {disk_bytes(env.root) / 2**20:6.1f} {seconds:8.1f}", flush=True)
        make_writable(env.root)
        shutil.rmtree(env.root)
    print(f"(scale {args.scale}, seed {args.seed}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
