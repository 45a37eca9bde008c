"""Helpers for the Flower process tests (tests/test_fl_flower_*.py): the two shape sites, a run
config on them, and the check that no process a Federation started is left behind.

The Flower tests are several modules, not one, because ``--dist loadscope`` keeps a module on one
worker: as one module they were the longest single unit of the suite and set its wall time.
"""

from __future__ import annotations

import time
from pathlib import Path

from fl_core import RunConfig
from fl_core.flower.launch import Federation
from fl_core.flower.processes import group_alive
from fl_core.testing import make_shape_folders

REPO = Path(__file__).resolve().parents[1]
#: SCAFFOLD (server and client state) and FedBN (layers kept on each site): FedAvg's exchange is
#: the part both share, so a third run per engine (~25 s) would test nothing more.
ALGORITHMS = ("scaffold", "fedbn")


def make_sites(root: Path) -> list[str]:
    """Two small shape sites (8 images per class, 16 px): the data every Flower test trains on."""
    return make_shape_folders(root, clients=2, per_class=8, size=16, seed=5)


def run_cfg(sites, out, **kw) -> RunConfig:
    base = {"data_dirs": tuple(sites), "image_size": 16, "batch_size": 8, "rounds": 2, "out_dir": str(out),
            "progress": False, "resume": False}
    return RunConfig(**{**base, **kw})


def groups(fed: Federation) -> list[int]:
    """The process groups a Federation started (each command runs in its own group)."""
    return [p.pid for p in fed.procs.started]


def assert_all_gone(pgids: list[int]) -> None:
    deadline = time.monotonic() + 15
    while any(group_alive(g) for g in pgids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [g for g in pgids if group_alive(g)], "processes left behind"


def assert_gives_the_in_process_weights(engine: str, sites, tmp_path: Path) -> None:
    """SCAFFOLD and FedBN on one Federation of ``engine`` end with the in-process engine's
    weights, metrics and report files; then no process is left behind."""
    import json

    import pytest
    import torch

    from algorithms.registry import get_algorithm
    from fedagentbench.training import run
    from fl_core.flower.options import FlowerOptions

    with Federation(engine, sites, tmp_path / "federation", FlowerOptions(round_timeout=300)) as fed:
        started = groups(fed)
        for algorithm in ALGORITHMS:
            cfg = run_cfg(sites, tmp_path / algorithm, algorithm=algorithm, engine=engine)
            got = fed.run(cfg, get_algorithm(algorithm))
            want = run(cfg.replace(engine="inprocess", out_dir=str(tmp_path / f"ref-{algorithm}")))
            g = torch.load(Path(got.out_dir) / "final_model.pt", weights_only=False)["global_state"]
            w = torch.load(Path(want.out_dir) / "final_model.pt", weights_only=False)["global_state"]
            assert g.keys() == w.keys()
            for k in w:
                torch.testing.assert_close(g[k], w[k], rtol=1e-5, atol=1e-6, msg=f"{algorithm}: {k}")
            # personalised models (FedBN: each site's own BatchNorm layers, kept on its node) agree too
            for model in ("global", "personal"):
                for mg, mw in zip(getattr(got, f"{model}_metrics")["clients"],
                                  getattr(want, f"{model}_metrics")["clients"]):
                    assert mg["accuracy"] == pytest.approx(mw["accuracy"]) and mg["n"] == mw["n"]
            for name in ("metrics.csv", "history.jsonl"):
                lines_g = (Path(got.out_dir) / name).read_text().splitlines()
                lines_w = (Path(want.out_dir) / name).read_text().splitlines()
                assert len(lines_g) == len(lines_w)
            assert lines_g and json.loads(lines_g[0]).keys() == json.loads(lines_w[0]).keys()
            assert (Path(got.out_dir) / "metrics.csv").read_text().splitlines()[0] == \
                (Path(want.out_dir) / "metrics.csv").read_text().splitlines()[0]
            assert (Path(got.out_dir) / "learning_curve.png").stat().st_size > 0
            summary = json.loads((Path(got.out_dir) / "summary.json").read_text())
            assert summary["engine"] == engine and summary["config"]["algorithm"] == algorithm
    assert_all_gone(started)
