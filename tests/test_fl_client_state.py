"""Client state lives on the client: the server's checkpoint holds none, and each client resumes its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from algorithms.api import ClientUpdate, ServerContext, StateDict
from algorithms.scaffold import _C_I, Scaffold
from algorithms.testing import dummy_federation
from fl_core.config import RunConfig
from fl_core.engine import Engine

torch.set_num_threads(1)


class Interrupted(Exception):
    pass


class CrashingScaffold(Scaffold):
    """SCAFFOLD that can die in round 2's aggregation: after the clients saved round 2, before the server did."""

    crash_in_round: int = 0

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        if server.round == self.crash_in_round:
            raise Interrupted
        return super().server_update(global_state, combined, updates, server)


CrashingScaffold.name = "scaffold"


def _run(tmp: Path, out: str, crash: int = 0):
    data = dummy_federation(num_clients=3)
    dirs = []
    for c in data.clients:
        (tmp / "data" / c.name).mkdir(parents=True, exist_ok=True)
        dirs.append(str(tmp / "data" / c.name))
    cfg = RunConfig(data_dirs=tuple(dirs), algorithm="scaffold", rounds=3, batch_size=8, image_size=16,
                    out_dir=str(tmp / out), progress=False)
    algo = CrashingScaffold()
    algo.crash_in_round = crash
    engine = Engine(cfg, data, algo)
    return engine, engine.run(reports=False)


def test_server_checkpoint_holds_no_client_state_and_clients_keep_their_own(tmp_path) -> None:
    engine, _ = _run(tmp_path, "run")
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert not {"client_states", "local_states"} & set(ckpt), "the server must not hold client state"
    for cid in range(3):
        files = sorted((tmp_path / "run" / "clients" / f"client_{cid:03d}").glob("round_*.state"))
        assert [f.name for f in files] == ["round_00002.state", "round_00003.state"]
        assert _C_I in engine.clients[cid].state


def test_resume_between_the_clients_and_the_server_checkpoint_equals_a_straight_run(tmp_path) -> None:
    with pytest.raises(Interrupted):
        _run(tmp_path, "resumed", crash=2)  # clients have saved round 2, the server only round 1
    resumed, r1 = _run(tmp_path, "resumed")
    straight, r2 = _run(tmp_path, "straight")
    assert r1.resumed_from == 1
    for k, v in straight.global_state.items():
        assert torch.equal(resumed.global_state[k], v), k
    for a, b in zip(resumed.clients, straight.clients):
        assert all(torch.equal(a.state[_C_I][k], b.state[_C_I][k]) for k in b.state[_C_I])
    assert [h["global"] for h in r1.history] == [h["global"] for h in r2.history]
