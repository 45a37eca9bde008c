"""FedAvgM: heavy-ball momentum on the server's pseudo-gradient."""

from __future__ import annotations

import torch

from algorithms.base import ClientUpdate, ServerContext
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine


def test_zero_momentum_unit_lr_equals_fedavg():
    data = dummy_federation()
    e_avg, _ = run_engine(get_algorithm("fedavg"), data, rounds=2)
    e_m, _ = run_engine(get_algorithm("fedavgm", server_momentum=0.0, server_lr=1.0), data, rounds=2)
    for k in e_avg.global_state:
        assert torch.allclose(e_avg.global_state[k].float(), e_m.global_state[k].float(), atol=1e-6), k


def test_momentum_accumulates_the_pseudo_gradient():
    info = dummy_info()
    g = dummy_state(0)
    algo = get_algorithm("fedavgm", server_momentum=0.5, server_lr=1.0)
    server = ServerContext(1, info, 1, (0,), (10,))
    algo.init_server(g, server)
    k = info.param_keys[0]
    delta = 0.1
    step1 = algo.aggregate(g, [ClientUpdate(0, {kk: v - delta if kk in info.param_keys else v
                                                 for kk, v in g.items()}, 10)], server)
    assert torch.allclose(step1[k], g[k] - delta, atol=1e-6)
    step2 = algo.aggregate(step1, [ClientUpdate(0, {kk: v - delta if kk in info.param_keys else v
                                                     for kk, v in step1.items()}, 10)], server)
    # v2 = 0.5 * 0.1 + 0.1 = 0.15: the second step is larger than the clients' own change
    assert torch.allclose(step2[k], step1[k] - 0.15, atol=1e-6)
    assert set(algo.get_state()) == {"velocity_"}
