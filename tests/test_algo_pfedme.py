"""pFedMe: K inner steps on theta with the Moreau tie, w steps towards theta, beta-mixing on the server."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.api import PERSONAL_STATE, Batch, ClientContext, ClientUpdate, Message, Phase, ServerContext
from algorithms.pfedme import THETA, PFedMe
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, run_engine

torch.set_num_threads(1)


def _setup():
    torch.manual_seed(0)
    lin = nn.Linear(4, 3)
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    w = {k: v.detach().clone() for k, v in lin.state_dict().items()}
    info = dummy_info()
    info = type(info)(("weight", "bias"), ("weight", "bias"), (), (), (), (), 3)
    ctx = ClientContext(client_id=0, round=1, info=info, global_state=w, message=Message(), state={},
                        num_samples=6, label_counts=torch.ones(3), local_epochs=1, lr=0.1,
                        make_model=lambda s: None, phase=Phase(epochs=1))
    return lin, x, y, w, ctx


def test_inner_steps_solve_the_moreau_problem_and_w_moves_towards_theta() -> None:
    lin, x, y, w, ctx = _setup()
    algo = PFedMe(lam=2.0, k=2, personal_lr=0.1)
    algo.begin_client(ctx)
    loss = algo.local_loss(ctx, lin, Batch(x, y, lin(x), x, F.cross_entropy(lin(x), y)))
    # by hand: two steps of theta <- theta - 0.1 (grad f(theta) + 2 (theta - w)) from theta = w
    theta = {k: v.clone() for k, v in w.items()}
    for _ in range(2):
        t = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
        g = torch.autograd.grad(F.cross_entropy(F.linear(x, t["weight"], t["bias"]), y), [t["weight"], t["bias"]])
        theta = {k: t[k].detach() - 0.1 * (gk + 2.0 * (t[k].detach() - w[k])) for k, gk in zip(("weight", "bias"), g)}
    for k in theta:
        assert torch.allclose(ctx.scratch[THETA][k], theta[k], atol=1e-6), k
    loss.backward()
    for k, p in lin.named_parameters():
        assert torch.allclose(p.grad, 2.0 * (w[k] - theta[k]), atol=1e-6), "grad of lambda/2 ||w - theta||^2"
        assert p.grad.abs().sum() > 0


def test_server_mixes_the_mean_into_the_old_global_with_beta() -> None:
    info = dummy_info()
    info = type(info)(("a",), ("a",), (), (), (), (), 3)
    server = ServerContext(1, info, 2, (0, 1), (5, 5))
    ups = [ClientUpdate(0, {"a": torch.tensor([2.0])}, 5), ClientUpdate(1, {"a": torch.tensor([4.0])}, 5)]
    out = PFedMe(beta=0.5).aggregate({"a": torch.tensor([0.0])}, ups, server)
    assert torch.allclose(out["a"], torch.tensor([1.5]))  # 0.5 * 0 + 0.5 * 3


def test_personalised_model_is_theta_and_differs_from_the_global() -> None:
    engine, result = run_engine(get_algorithm("pfedme"), dummy_federation(), rounds=1)
    for cid, state in engine.client_states.items():
        theta = state[PERSONAL_STATE]
        assert list(theta) == list(engine.global_state)
        gap = sum(float((theta[k] - engine.global_state[k]).abs().sum()) for k in engine.info.param_keys)
        assert gap > 1e-3, cid
    assert "personal" in result.history[0]
