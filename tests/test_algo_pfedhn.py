"""pFedHN: the server's hypernetwork gives each client its own head, and its update moves a client's
generated head towards the head that client trained (chain rule with the weight change)."""

from __future__ import annotations

import torch

from algorithms.api import PERSONAL_STATE, ClientUpdate, ServerContext
from algorithms.pfedhn import PFedHN
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine

torch.set_num_threads(1)


def test_each_client_starts_from_its_own_generated_head_and_the_shared_body() -> None:
    info = dummy_info()
    g = dummy_state(0)
    server = ServerContext(1, info, 3, (0, 1, 2), (10, 10, 10))
    algo = PFedHN()
    algo.init_server(g, server)
    w0, w1 = algo.client_weights(0, g, server), algo.client_weights(1, g, server)
    assert not torch.equal(w0["head.weight"], w1["head.weight"])
    assert not torch.equal(w0["head.weight"], g["head.weight"])
    assert all(torch.equal(w0[k], g[k]) for k in info.body_keys)


def test_hypernetwork_step_moves_the_generated_head_towards_the_trained_head() -> None:
    info = dummy_info()
    g = dummy_state(0)
    server = ServerContext(1, info, 2, (0, 1), (10, 10))
    algo = PFedHN(momentum=0.0, weight_decay=0.0, hn_lr=0.05)
    algo.init_server(g, server)
    start = {c: algo.client_weights(c, g, server) for c in (0, 1)}
    torch.manual_seed(1)
    trained = {c: {k: v + (0.1 * torch.randn_like(v) if k in info.head_keys else 0) for k, v in start[c].items()}
               for c in (0, 1)}
    algo.aggregate(g, [ClientUpdate(c, trained[c], 10) for c in (0, 1)], server)
    for c in (0, 1):
        after = algo.client_weights(c, g, server)
        before_gap = sum(float((start[c][k] - trained[c][k]).pow(2).sum()) for k in info.head_keys)
        after_gap = sum(float((after[k] - trained[c][k]).pow(2).sum()) for k in info.head_keys)
        assert after_gap < before_gap, f"client {c}: the hypernetwork did not learn from its update"


def test_a_run_keeps_the_hypernetwork_on_the_server_and_personal_models_on_clients() -> None:
    engine, result = run_engine(PFedHN(), dummy_federation(), rounds=2)
    assert all(PERSONAL_STATE in s for s in engine.client_states.values())
    assert "hn_" in engine.algo.get_state()
    assert result.history[-1]["personal"] != result.history[-1]["global"]
