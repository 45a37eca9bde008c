"""The Flower engines as real processes on 127.0.0.1: the same weights as the in-process engine for
FedAvg, SCAFFOLD (client state) and FedBN (local layers); a site that never starts, a SuperNode killed
mid-run, Ctrl-C and SIGTERM; and no process left behind in any case (checked by process group)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from algorithms.registry import get_algorithm
from fedagentbench.training import run
from fl_core import RunConfig
from fl_core.flower.launch import Federation
from fl_core.flower.options import FlowerOptions
from fl_core.flower.processes import group_alive
from fl_core.testing import make_shape_folders

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ALGORITHMS = ("fedavg", "scaffold", "fedbn")


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return make_shape_folders(tmp_path_factory.mktemp("sites"), clients=2, per_class=8, size=16, seed=5)


def _cfg(sites, out, **kw):
    base = {"data_dirs": tuple(sites), "image_size": 16, "batch_size": 8, "rounds": 2, "out_dir": str(out),
            "progress": False, "resume": False}
    return RunConfig(**{**base, **kw})


def _groups(fed: Federation) -> list[int]:
    return [p.pid for p in fed.procs.started]


def _assert_all_gone(groups: list[int]) -> None:
    deadline = time.monotonic() + 15
    while any(group_alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [g for g in groups if group_alive(g)], "processes left behind"


@pytest.mark.parametrize("engine", ["flower-deployment", "flower-simulation"])
def test_flower_gives_the_in_process_weights(sites, tmp_path, engine):
    with Federation(engine, sites, tmp_path / "federation", FlowerOptions(round_timeout=300)) as fed:
        groups = _groups(fed)
        for algorithm in ALGORITHMS:
            cfg = _cfg(sites, tmp_path / algorithm, algorithm=algorithm, engine=engine)
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
    _assert_all_gone(groups)


def test_a_site_that_never_starts_is_named(sites, tmp_path):
    options = FlowerOptions(connect_timeout=15)
    with Federation("flower-deployment", sites, tmp_path / "federation", options, sites=[0]) as fed:
        groups = _groups(fed)
        with pytest.raises(RuntimeError, match=r"'site1'.* did not connect within connect_timeout=15 s"):
            fed.run(_cfg(sites, tmp_path / "run", engine="flower-deployment"), get_algorithm("fedavg"))
    _assert_all_gone(groups)


def test_a_killed_supernode_leaves_the_run_by_min_clients(sites, tmp_path):
    """Policy: a site that does not reply within round_timeout is dropped; the run goes on while at
    least min_clients sites reply (here 1 of 2)."""
    cfg = _cfg(sites, tmp_path / "run", engine="flower-deployment", rounds=3, min_clients=1)
    with Federation("flower-deployment", sites, tmp_path / "federation", FlowerOptions(round_timeout=20)) as fed:
        groups = _groups(fed)
        victim = fed.nodes["site1"]
        history = Path(cfg.out_dir) / "history.jsonl"

        def kill_after_round_one() -> None:
            while not (history.exists() and history.read_text().strip()):
                time.sleep(0.1)
            os.killpg(victim.pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_after_round_one, daemon=True)
        killer.start()
        result = fed.run(cfg, get_algorithm("fedavg"))
        killer.join(5)
    assert result.rounds_completed == 3
    assert [h["sampled"] for h in result.history] == [[0, 1], [0], [0]]
    assert result.history[-1]["global"]["clients"][1]["n"] == 0  # no metrics from the dropped site
    assert result.history[-1]["global"]["overall"]["n"] == result.history[-1]["global"]["clients"][0]["n"]
    _assert_all_gone(groups)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_stops_every_process(sites, tmp_path, sig):
    cmd = [sys.executable, "-m", "fedagentbench.cli", "train", "--data", *sites, "--engine", "flower-deployment",
           "--rounds", "50", "--image-size", "16", "--batch-size", "8", "--out", str(tmp_path / "run"), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    pids: list[int] = []
    for line in proc.stderr:  # the launcher logs every process it starts
        found = re.search(r"started (\S+) \(pid (\d+)\)", line)
        if found:
            pids.append(int(found.group(2)))
        if found and found.group(1).startswith("flwr-run"):
            break
    drain = threading.Thread(target=proc.stderr.read, daemon=True)  # a full pipe would block the launcher
    drain.start()
    logs = tmp_path / "run" / "flower_logs"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not all(  # mid-run: both nodes connected
            "SuperNode ID" in p.read_text(errors="replace") for p in logs.glob("supernode-*.log")):
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.kill(proc.pid, sig)
    assert proc.wait(60) != 0
    assert len(pids) == 4  # SuperLink, two SuperNodes, flwr run
    _assert_all_gone(pids)


def test_a_restarted_run_resumes_server_and_client_checkpoints(sites, tmp_path, monkeypatch):
    """SCAFFOLD keeps c_i on each site: after the ServerApp dies following round 1, a restart with the
    same run folder resumes the server's checkpoint and every site's own state, and ends with the
    uninterrupted in-process run's weights."""
    from fl_core.engine import CRASH_ENV

    cfg = _cfg(sites, tmp_path / "run", algorithm="scaffold", engine="flower-deployment", rounds=2, resume=True)
    monkeypatch.setenv(CRASH_ENV, "1")
    with Federation("flower-deployment", sites, tmp_path / "run") as fed, \
            pytest.raises(RuntimeError, match="without a finished run"):
        fed.run(cfg, get_algorithm("scaffold"))
    assert len((tmp_path / "run" / "history.jsonl").read_text().splitlines()) == 1
    monkeypatch.delenv(CRASH_ENV)
    with Federation("flower-deployment", sites, tmp_path / "run") as fed:
        got = fed.run(cfg, get_algorithm("scaffold"))
    assert got.resumed_from == 1 and got.rounds_completed == 2
    want = run(cfg.replace(engine="inprocess", out_dir=str(tmp_path / "ref"), resume=False))
    g = torch.load(tmp_path / "run" / "final_model.pt", weights_only=False)["global_state"]
    w = torch.load(Path(want.out_dir) / "final_model.pt", weights_only=False)["global_state"]
    for k in w:
        torch.testing.assert_close(g[k], w[k], rtol=1e-5, atol=1e-6, msg=k)
