"""Elastic Aggregation: the averaged update is scaled per coordinate by 1 + tau - mean/max sensitivity."""

from __future__ import annotations

import torch
from torch import nn

from algorithms.api import ClientContext, ClientUpdate, Message, ModelInfo, ServerContext
from algorithms.elastic import SENSITIVITY
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, dummy_state, initial_state, run_engine

torch.set_num_threads(1)
K = "head.bias"


def test_step_factor_per_coordinate_from_the_clients_sensitivities() -> None:
    info = dummy_info()
    g = dummy_state(0)
    g = {**g, K: torch.zeros(3)}
    algo = get_algorithm("elastic", tau=0.5)
    server = ServerContext(1, info, 2, (0, 1), (10, 30))
    zeros = {k: torch.zeros_like(g[k]) for k in info.param_keys}
    # coordinate 0: equal sensitivity -> zeta = tau; 1: only the small client -> 1.5 - 0.25 = 1.25;
    # 2: nobody -> plain step 1.
    sa = {**zeros, K: torch.tensor([2.0, 4.0, 0.0])}
    sb = {**zeros, K: torch.tensor([2.0, 0.0, 0.0])}
    ups = [ClientUpdate(0, {**g, K: torch.tensor([4.0, 4.0, 4.0])}, 10, Message(arrays={SENSITIVITY: sa})),
           ClientUpdate(1, {**g, K: torch.tensor([0.0, 0.0, 0.0])}, 30, Message(arrays={SENSITIVITY: sb}))]
    out = algo.aggregate(g, ups, server)
    mean = torch.tensor([1.0, 1.0, 1.0])                        # (10 * 4 + 30 * 0) / 40
    assert torch.allclose(out[K], torch.tensor([0.5, 1.25, 1.0]) * mean)
    plain = get_algorithm("fedavg").aggregate(g, ups, server)
    assert torch.allclose(plain[K], mean)


def test_client_keeps_a_moving_average_of_gradient_magnitudes_and_uploads_it() -> None:
    model = nn.Linear(2, 1, bias=False)
    info = ModelInfo(("weight",), ("weight",), (), (), (), (), 3)
    ctx = ClientContext(client_id=0, round=1, info=info, global_state={"weight": torch.zeros(1, 2)},
                        message=Message(), state={}, num_samples=4, label_counts=torch.ones(3), local_epochs=1,
                        lr=0.1, make_model=lambda s: model)
    algo = get_algorithm("elastic", mu=0.5)
    algo.begin_client(ctx)
    for grad in (torch.tensor([[2.0, -4.0]]), torch.tensor([[-2.0, 0.0]])):
        model.weight.grad = grad
        algo.after_backward(ctx, model)
    # 0.5 * (0.5 * 0 + 0.5 * |g1|) + 0.5 * |g2|
    assert torch.allclose(ctx.state["elastic_sensitivity"]["weight"], torch.tensor([[1.5, 1.0]]))
    sent = algo.end_client(ctx, model).arrays[SENSITIVITY]["weight"]
    assert torch.equal(sent, ctx.state["elastic_sensitivity"]["weight"])


def test_a_round_differs_from_fedavg_only_by_the_server_step() -> None:
    data = dummy_federation()
    e_el, _ = run_engine(get_algorithm("elastic"), data, rounds=1)
    e_avg, _ = run_engine(get_algorithm("fedavg"), data, rounds=1)   # same seed: same client training
    for c in e_el.clients:
        s = c.state["elastic_sensitivity"]
        assert set(s) == set(e_el.info.param_keys) and all(v.sum() > 0 for v in s.values())
    g = initial_state(data)
    ups = [ClientUpdate(c.cid, {}, len(c.train), Message(arrays={SENSITIVITY: c.state["elastic_sensitivity"]}))
           for c in e_el.clients]
    zeta = e_el.algo.step_factors(ups, ServerContext(1, e_el.info, 2, (0, 1), e_el.sizes))
    assert all(((z >= 0.5 - 1e-9) & (z <= 1.5 + 1e-9)).all() for z in zeta.values())
    for k in e_el.info.param_keys:
        expected = g[k] + zeta[k].float() * (e_avg.global_state[k] - g[k])
        assert torch.allclose(e_el.global_state[k], expected, atol=1e-6), k
    k = e_el.info.param_keys[0]
    assert not torch.allclose(e_el.global_state[k], e_avg.global_state[k]), "the step was not scaled"
    assert all(torch.equal(e_el.global_state[b], e_avg.global_state[b]) for b in e_el.info.buffer_keys)
