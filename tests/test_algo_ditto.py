"""Ditto: global model is FedAvg's; the personal model persists, differs, and lambda ties it to the global."""

from __future__ import annotations

import torch
from torch import nn

from algorithms.api import PERSONAL_STATE, Batch, ClientContext, Message, Phase
from algorithms.ditto import Ditto
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, run_engine
from tests.tensor_asserts import assert_same_tensors

torch.set_num_threads(1)


class Spy(Ditto):
    """Records, per (round, client), the personal model at the start and end, and the received weights."""

    def __init__(self, lam: float = 0.1, personal_epochs: int | None = None) -> None:
        super().__init__(lam=lam, personal_epochs=personal_epochs)
        self.log_: dict = {}

    def begin_client(self, ctx: ClientContext) -> None:
        start = ctx.state.get(PERSONAL_STATE)
        self.log_[(ctx.round, ctx.client_id, "start")] = None if start is None else dict(start)

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        self.log_[(ctx.round, ctx.client_id, "end")] = dict(ctx.state[PERSONAL_STATE])
        self.log_[(ctx.round, ctx.client_id, "received")] = {k: v.clone() for k, v in ctx.global_state.items()}
        return Message()


Spy.name = "ditto"


def _dist(a: dict, b: dict, keys) -> float:
    return sum(float((a[k] - b[k]).pow(2).sum()) for k in keys) ** 0.5


def test_global_model_is_fedavg() -> None:
    data = dummy_federation()
    e_d, _ = run_engine(get_algorithm("ditto"), data, rounds=2, seed=5)
    e_a, _ = run_engine(get_algorithm("fedavg"), data, rounds=2, seed=5)
    for k, v in e_a.global_state.items():
        assert torch.equal(e_d.global_state[k], v), k


def test_personal_model_is_kept_across_rounds_and_differs_from_global() -> None:
    engine, result = run_engine(Spy(), dummy_federation(), rounds=2)
    log, params = engine.algo.log_, engine.info.param_keys
    for cid in range(2):
        assert log[(1, cid, "start")] is None, "first round: the personal model starts from the global"
        start2, end1 = log[(2, cid, "start")], log[(1, cid, "end")]
        assert_same_tensors(start2, end1, what="round 2 continues the personal model")
        end2 = log[(2, cid, "end")]
        assert _dist(end2, engine.global_state, params) > 1e-3
        pers = engine.algo.personalised_state(engine.global_state, engine.client_states[cid], {})
        assert_same_tensors(pers, end2, keys=end2, what="personalised evaluation uses v_k")
    assert _dist(log[(2, 0, "end")], log[(2, 1, "end")], params) > 1e-3
    assert "personal" in result.history[-1]


def test_large_lambda_keeps_personal_model_near_the_global() -> None:
    """Distance of v_k to the received w^t after 20 epochs shrinks as lambda grows (lambda=0 is
    local training). With plain SGD at lr 0.05 it cannot go below about one gradient step, lr * |g|,
    hence lambda * lr = 1 (lambda=20) is the largest stable, "very large" value here."""
    data = dummy_federation()
    dists = {}
    for lam in (0.0, 1.0, 20.0):
        engine, _ = run_engine(Spy(lam=lam, personal_epochs=20), data, rounds=1, momentum=0.0)
        log = engine.algo.log_
        dists[lam] = _dist(log[(1, 0, "end")], log[(1, 0, "received")], engine.info.param_keys)
    assert dists[0.0] > dists[1.0] > dists[20.0], dists
    assert dists[20.0] < 0.5 * dists[0.0], dists


def test_proximal_term_only_in_the_personal_phase() -> None:
    lin = nn.Linear(2, 1, bias=False)
    ctx = ClientContext(client_id=0, round=1, info=dummy_info(), global_state={"weight": torch.zeros(1, 2)},
                        message=Message(), state={}, num_samples=4, label_counts=torch.ones(2), local_epochs=1, lr=0.1,
                        make_model=lambda s: nn.Identity())
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0]]))
    zero = torch.zeros(())
    ctx.phase = Phase(epochs=1)
    assert Ditto(lam=2.0).local_loss(ctx, lin, Batch(zero, zero, zero, zero, zero)) is zero
    ctx.phase = Phase(epochs=1, model="personal")
    assert torch.isclose(Ditto(lam=2.0).local_loss(ctx, lin, Batch(zero, zero, zero, zero, zero)), torch.tensor(5.0))
