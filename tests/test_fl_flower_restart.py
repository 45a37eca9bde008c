"""A Flower deployment run whose ServerApp dies is resumed by a restart with the same run folder: the
server's checkpoint and every site's own client state, ending with the in-process run's weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from algorithms.registry import get_algorithm
from fedagentbench.training import run
from fl_core.flower.launch import Federation
from tests.flower_helpers import make_sites, run_cfg

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    return make_sites(tmp_path_factory.mktemp("sites"))


def test_a_restarted_run_resumes_server_and_client_checkpoints(sites, tmp_path, monkeypatch):
    """SCAFFOLD keeps c_i on each site: after the ServerApp dies following round 1, a restart with the
    same run folder resumes the server's checkpoint and every site's own state, and ends with the
    uninterrupted in-process run's weights."""
    from fl_core.engine import CRASH_ENV

    cfg = run_cfg(sites, tmp_path / "run", algorithm="scaffold", engine="flower-deployment", rounds=2, resume=True)
    monkeypatch.setenv(CRASH_ENV, "1")
    with Federation("flower-deployment", sites, tmp_path / "run") as fed, \
            pytest.raises(RuntimeError, match="ServerApp process exited without a finished run"):
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
