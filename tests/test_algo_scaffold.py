"""SCAFFOLD: control variates correct every local gradient and follow option II."""

from __future__ import annotations

import torch
from torch import nn

from algorithms.api import ClientContext, ClientUpdate, Message, ServerContext
from algorithms.registry import get_algorithm
from algorithms.scaffold import _C_I, Scaffold
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine

torch.set_num_threads(1)


def _close(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return all(torch.allclose(a[k].float(), b[k].float(), atol=atol) for k in a)


def test_first_round_equals_fedavg_then_variates_change_the_update() -> None:
    data = dummy_federation()
    e_s1, _ = run_engine(get_algorithm("scaffold"), data, rounds=1, seed=1)
    e_a1, _ = run_engine(get_algorithm("fedavg"), data, rounds=1, seed=1)
    assert _close(e_s1.global_state, e_a1.global_state), "zero control variates must give FedAvg"
    c = e_s1.algo.c_
    assert any(v.abs().max() > 0 for v in c.values()), "after a round the server variate is non-zero"
    assert len(e_s1.client_states) == len(data.clients) and all(_C_I in s for s in e_s1.client_states.values())

    e_s2, _ = run_engine(get_algorithm("scaffold"), data, rounds=2, seed=1)
    e_a2, _ = run_engine(get_algorithm("fedavg"), data, rounds=2, seed=1)
    diff = max((e_s2.global_state[k].float() - e_a2.global_state[k].float()).abs().max().item()
               for k in e_s2.info.param_keys)
    assert diff > 1e-4, "non-zero control variates must change round 2's update"


def _ctx(c: dict, c_i: dict | None) -> ClientContext:
    state = {} if c_i is None else {_C_I: c_i}
    return ClientContext(client_id=0, round=1, info=dummy_info(), global_state={}, message=Message(arrays={"c": c}),
                         state=state, num_samples=4, label_counts=torch.ones(3), local_epochs=1,
                         lr=0.1, make_model=lambda s: nn.Identity())


def test_after_backward_adds_c_minus_c_i_to_the_gradient() -> None:
    lin = nn.Linear(2, 1, bias=False)
    c = {"weight": torch.tensor([[1.0, 2.0]])}
    c_i = {"weight": torch.tensor([[0.5, -1.0]])}
    ctx = _ctx(c, c_i)
    algo = Scaffold()
    algo.begin_client(ctx)
    lin.weight.grad = torch.tensor([[10.0, 20.0]])
    algo.after_backward(ctx, lin)
    assert torch.equal(lin.weight.grad, torch.tensor([[10.5, 23.0]]))  # g - c_i + c
    ctx.steps = 1
    up = algo.end_client(ctx, lin)
    # option II with one plain-SGD step: c_i+ = c_i - c + (x - y)/(K lr) = raw gradient
    assert torch.equal(ctx.state[_C_I]["weight"], torch.tensor([[10.0, 20.0]]))
    assert torch.equal(up.arrays["delta_c"]["weight"], torch.tensor([[9.5, 21.0]]))


def test_option_ii_matches_the_paper_formula_under_plain_sgd() -> None:
    """Round 2 (non-zero c and c_i) with momentum 0: c_i+ == c_i - c + (x - y) / (K lr)."""
    seen: dict = {}

    class Spy(Scaffold):
        def begin_client(self, ctx: ClientContext) -> None:
            super().begin_client(ctx)
            if ctx.round == 2 and ctx.client_id == 0:
                seen["c"] = {k: v.clone() for k, v in ctx.message.arrays["c"].items()}
                seen["c_i"] = {k: v.clone() for k, v in ctx.state[_C_I].items()}
                seen["x"] = {k: v.clone() for k, v in ctx.global_state.items()}

        def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
            up = super().end_client(ctx, model)
            if ctx.round == 2 and ctx.client_id == 0:
                seen["y"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
                seen["K"], seen["lr"] = ctx.steps, ctx.lr
                seen["new"] = ctx.state[_C_I]
            return up

    Spy.name = "scaffold"
    run_engine(Spy(), dummy_federation(), rounds=2, seed=0, momentum=0.0)
    assert seen["K"] > 1
    assert any(v.abs().max() > 0 for v in seen["c"].values())
    for k in seen["c"]:
        expect = seen["c_i"][k] - seen["c"][k] + (seen["x"][k] - seen["y"][k]) / (seen["K"] * seen["lr"])
        assert torch.allclose(seen["new"][k], expect, atol=1e-4, rtol=1e-3), k


def test_server_variate_update_scales_by_sampled_over_total() -> None:
    info = dummy_info()
    g = dummy_state(0)
    algo = Scaffold()
    algo.init_server(g, ServerContext(0, info, 4))
    k = info.param_keys[0]
    d1 = {n: torch.zeros_like(g[n]) for n in info.param_keys}
    d2 = {n: torch.zeros_like(g[n]) for n in info.param_keys}
    d1[k] += 2.0
    d2[k] += 6.0
    shared = {n: v.clone() for n, v in g.items()}
    ups = [ClientUpdate(0, shared, 10, Message(arrays={"delta_c": d1})),
           ClientUpdate(1, shared, 30, Message(arrays={"delta_c": d2}))]
    out = algo.aggregate(g, ups, ServerContext(1, info, 4, (0, 1), (10, 30, 10, 10)))
    # c = 0 + (1/N) * (2 + 6) with N = 4 clients, 2 sampled
    assert torch.allclose(algo.c_[k], torch.full_like(g[k], 2.0))
    assert _close(out, g)


def test_global_lr_scales_the_averaged_change() -> None:
    info = dummy_info()
    g, s = dummy_state(0), dummy_state(1)
    algo = Scaffold(server_lr=0.5)
    algo.init_server(g, ServerContext(0, info, 2))
    out = algo.aggregate(g, [ClientUpdate(0, s, 5)], ServerContext(1, info, 2, (0,), (5, 5)))
    k = info.param_keys[0]
    assert torch.allclose(out[k], g[k] + 0.5 * (s[k] - g[k]), atol=1e-6)
