"""FedProx: the proximal term is mu/2 ||w - w_global||^2, mu=0 is FedAvg exactly, mu>0 limits drift."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from algorithms.aggregation import subtract
from algorithms.api import Batch
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, initial_state, run_engine
from tests.tensor_asserts import assert_same_tensors


def _drift(engine, initial):
    d = subtract(engine.global_state, initial, engine.info.param_keys)
    return sum(float(v.pow(2).sum()) for v in d.values())


def test_mu_zero_equals_fedavg_exactly():
    data = dummy_federation()
    e_avg, r_avg = run_engine(get_algorithm("fedavg"), data, rounds=2)
    e_prox, r_prox = run_engine(get_algorithm("fedprox", mu=0.0), data, rounds=2)
    assert_same_tensors(e_avg.global_state, e_prox.global_state, what="FedProx(mu=0) vs FedAvg")
    assert r_avg.final == r_prox.final


def test_large_mu_keeps_the_model_near_the_global_weights():
    data = dummy_federation()
    start = initial_state(data)
    e_avg, _ = run_engine(get_algorithm("fedavg"), data, rounds=1)
    e_prox, _ = run_engine(get_algorithm("fedprox", mu=10.0), data, rounds=1)
    assert _drift(e_prox, start) < 0.5 * _drift(e_avg, start)


def test_proximal_term_value():
    algo = get_algorithm("fedprox", mu=0.5)
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 3.0]]))

    ctx = SimpleNamespace(global_state={"weight": torch.tensor([[0.0, 1.0]])})
    base = torch.tensor(2.0)
    out = algo.local_loss(ctx, model, Batch(None, None, None, None, base)).detach()
    assert out.item() == 2.0 + 0.25 * (1.0 + 4.0)
