"""Training-job launch cost with and without the warm job server (a benchmark, not a test).

Launches the same small job (FedAvg, two synthetic shape sites, tiny CNN) several times through
:class:`tools.training_jobs.JobManager`, once with the fork server of :mod:`tools.job_server` and
once with a fresh ``python -m tools.job_process`` per job, and prints per job: seconds from launch to
the finished record, and the training time the job itself reports (``train_seconds``), so that the
difference is the process's fixed cost. The first forked job also pays the server's warm-up.

Usage::

    python benchmarks/job_startup.py [--jobs 5] [--rounds 5] [--image-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fl_core import RunConfig
from fl_core.testing import make_shape_folders
from tools import job_server
from tools.training_jobs import JobManager


def _one(manager: JobManager, cfg: RunConfig) -> tuple[float, float]:
    t0 = time.perf_counter()
    job = manager.launch(cfg, ["site0", "site1"], baselines=False)
    while job.state == "running":
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    if job.state != "finished":
        raise SystemExit(f"job failed: {job.log_tail()}")
    return wall, float(json.loads((job.out_dir / "summary.json").read_text())["train_seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=32)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        sites = make_shape_folders(Path(tmp) / "sites", clients=2, per_class=20, size=args.image_size, seed=0)
        cfg = RunConfig(data_dirs=tuple(sites), image_size=args.image_size, rounds=args.rounds, num_threads=1,
                        progress=False, resume=False, out_dir=str(Path(tmp) / "unused"))
        print(f"{args.jobs} jobs of FedAvg, {args.rounds} rounds, 2 shape sites at {args.image_size} px")
        print(f"{'launch':<12} {'job':>4} {'wall s':>8} {'train s':>8} {'fixed s':>8}")
        for mode in ("fork server", "subprocess"):
            os.environ[job_server.ENABLE_ENV] = "1" if mode == "fork server" else "0"
            manager = JobManager(Path(tmp) / mode.replace(" ", "_"))
            fixed = []
            for k in range(args.jobs):
                wall, train = _one(manager, cfg)
                fixed.append(wall - train)
                print(f"{mode:<12} {k + 1:>4} {wall:>8.2f} {train:>8.2f} {wall - train:>8.2f}")
            later = fixed[1:] or fixed
            print(f"{mode:<12} mean fixed cost after the first job: {statistics.mean(later):.2f} s")


if __name__ == "__main__":
    main()
