"""The Flower deployment engine when a site fails: a site whose SuperNode never starts is named, and a
SuperNode killed mid-run is dropped while enough sites reply; no process is left behind either way."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from algorithms.registry import get_algorithm
from fl_core.flower.launch import Federation
from fl_core.flower.options import FlowerOptions
from tests.flower_helpers import assert_all_gone, groups, make_sites, run_cfg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return make_sites(tmp_path_factory.mktemp("sites"))


def test_a_site_that_never_starts_is_named(sites, tmp_path):
    options = FlowerOptions(connect_timeout=15)
    with Federation("flower-deployment", sites, tmp_path / "federation", options, sites=[0]) as fed:
        started = groups(fed)
        with pytest.raises(RuntimeError, match=r"'site1'.* did not connect within connect_timeout=15 s"):
            fed.run(run_cfg(sites, tmp_path / "run", engine="flower-deployment"), get_algorithm("fedavg"))
    assert_all_gone(started)


def test_a_killed_supernode_leaves_the_run_by_min_clients(sites, tmp_path):
    """Policy: a site that does not reply within round_timeout is dropped; the run goes on while at
    least min_clients sites reply (here 1 of 2)."""
    cfg = run_cfg(sites, tmp_path / "run", engine="flower-deployment", rounds=3, min_clients=1)
    with Federation("flower-deployment", sites, tmp_path / "federation", FlowerOptions(round_timeout=12)) as fed:
        started = groups(fed)
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
    assert_all_gone(started)
