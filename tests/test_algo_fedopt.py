"""FedAdam / FedYogi / FedAdagrad: moments follow Reddi et al.'s Algorithm 2."""

from __future__ import annotations

import pytest
import torch

from algorithms.base import ClientUpdate, ServerContext
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine


def _step(name, delta, **params):
    info = dummy_info()
    g = dummy_state(0)
    algo = get_algorithm(name, **params)
    server = ServerContext(1, info, 1, (0,), (10,))
    algo.init_server(g, server)
    upd = {k: (v + delta if k in info.param_keys else v + 1.0) for k, v in g.items() if v.is_floating_point()}
    upd.update({k: v for k, v in g.items() if not v.is_floating_point()})
    out = algo.aggregate(g, [ClientUpdate(0, upd, 10)], server)
    return algo, info, g, out


@pytest.mark.parametrize("name,v1", [
    ("fedadam", 0.99 * 1e-6 + 0.01 * 0.04),
    ("fedyogi", 1e-6 + 0.01 * 0.04),          # v < delta^2, so sign(v - d2) = -1 adds
    ("fedadagrad", 1e-6 + 0.04),
])
def test_first_step_moments_and_update(name, v1):
    algo, info, g, out = _step(name, 0.2)
    k = info.param_keys[0]
    m1 = 0.1 * 0.2
    assert torch.allclose(algo.m_[k], torch.full_like(g[k], m1))
    assert torch.allclose(algo.v_[k], torch.full_like(g[k], v1))
    expected = g[k] + 0.01 * m1 / (v1 ** 0.5 + 1e-3)
    assert torch.allclose(out[k], expected, atol=1e-6)
    buf = info.buffer_keys[0]
    assert torch.allclose(out[buf].float(), g[buf].float() + 1.0)  # buffers are plainly averaged


def test_moments_persist_across_rounds_and_change_the_trajectory():
    data = dummy_federation()
    e_adam, _ = run_engine(get_algorithm("fedadam"), data, rounds=2)
    e_yogi, _ = run_engine(get_algorithm("fedyogi"), data, rounds=2)
    assert e_adam.algo.m_ and e_adam.algo.v_
    k = e_adam.info.param_keys[0]
    assert not torch.equal(e_adam.global_state[k], e_yogi.global_state[k])
