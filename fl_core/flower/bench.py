"""Measurements of the Flower engines for ``benchmarks/fl_throughput.py`` (figures, not tests).

Fixed cost per round: what a round costs beyond the clients' training (messages, polling, a process
per message), measured on sites so small that training takes a few milliseconds. Start-up: until
every SuperNode has registered with the SuperLink. Memory: the peak resident set of each node's
process group, sampled every 0.2 s while a run trains.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Self

from algorithms.api import FLAlgorithm
from fl_core.config import RunConfig
from fl_core.flower.launch import Federation
from fl_core.flower.options import FlowerOptions
from fl_core.testing import make_shape_folders

__all__ = ["GroupMemory", "fixed_cost", "flower_rate", "startup_seconds"]

#: Flower 1.42's own waits: a SuperNode asks for messages every 3 s, a SuperExec for tasks every 1 s,
#: and every message starts a fresh ``flwr-clientapp`` interpreter. (The server's polling is ours.)
FLOWER_DEFAULTS = FlowerOptions(poll_interval=3.0, superexec_poll_interval=1.0, fork_server=False)


class GroupMemory:
    """Samples the summed RSS (MiB) of some process groups in a thread; keeps each group's peak."""

    def __init__(self, groups: dict[str, int], every: float = 0.2) -> None:
        self.groups, self.every = groups, every
        self.peak = dict.fromkeys(groups, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-eo", "pgid=,rss="], check=False, capture_output=True, text=True).stdout
            totals: dict[int, float] = {}
            for line in out.splitlines():
                pgid, rss = line.split()
                totals[int(pgid)] = totals.get(int(pgid), 0.0) + int(rss) / 1024
            for name, g in self.groups.items():
                self.peak[name] = max(self.peak[name], totals.get(g, 0.0))
            self._stop.wait(self.every)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flower_rate(cfg: RunConfig, algorithm: FLAlgorithm, work: Path) -> tuple[float, float, list[float]]:
    """Images/s under ``cfg.engine`` (train exchanges only), evaluation seconds, peak RSS per node."""
    with Federation(cfg.engine, cfg.data_dirs, work / f"federation-{cfg.engine}") as fed, \
            GroupMemory({n: p.pid for n, p in fed.nodes.items()}) as mem:
        result = fed.run(cfg, algorithm)
    images = sum(h["train_images"] for h in result.history)
    rate = images / sum(h["round_seconds"] for h in result.history)
    return rate, sum(h["eval_seconds"] for h in result.history), list(mem.peak.values())


def fixed_cost(engine: str, algorithm: FLAlgorithm, work: Path, tuned: bool = True,
               rounds: int = 4) -> tuple[float, int]:
    """Mean seconds per round beyond training (rounds 2.., the first pays for warm-up), on tiny sites."""
    dirs = make_shape_folders(work / "sites", clients=2, per_class=2, size=8, seed=0)
    cfg = RunConfig(data_dirs=tuple(dirs), algorithm=algorithm.name, algorithm_params=algorithm.get_params(),
                    image_size=8, batch_size=8, rounds=rounds, out_dir=str(work / "run"), resume=False,
                    progress=False, engine=engine)
    with Federation(engine, dirs, work / "federation", FlowerOptions() if tuned else FLOWER_DEFAULTS) as fed:
        result = fed.run(cfg, algorithm)
    later = result.history[1:]
    costs = [h["round_seconds"] + h["eval_seconds"] - h["train_seconds"] / max(len(h["sampled"]), 1)
             for h in later]
    return sum(costs) / len(costs), rounds


def startup_seconds(n: int, work: Path, timeout: float = 600.0) -> float:
    """Seconds from nothing to a SuperLink with ``n`` registered SuperNodes (processes stopped after)."""
    dirs = make_shape_folders(work / "sites", clients=n, per_class=1, size=8, seed=0)
    t0 = time.perf_counter()
    with Federation("flower-deployment", dirs, work / "federation") as fed:
        deadline = time.monotonic() + timeout
        logs = [p.log_path for p in fed.nodes.values()]
        while not all("SuperNode ID" in p.read_text(errors="replace") for p in logs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} SuperNodes did not register within {timeout:g} s")
            time.sleep(0.05)
        return time.perf_counter() - t0
