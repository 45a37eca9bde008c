"""FedDyn: client regulariser, client state update and server correction, checked by hand."""

from __future__ import annotations

import torch
from torch import nn

from algorithms.api import Batch, ClientContext, ClientUpdate, Message, ServerContext
from algorithms.feddyn import _GRAD, FedDyn
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, run_engine
from fl_core.models import ModelInfo

torch.set_num_threads(1)

INFO = ModelInfo(state_keys=("w",), param_keys=("w",), buffer_keys=(), body_keys=("w",), head_keys=(),
                 bn_keys=(), num_classes=2)


class One(nn.Module):
    def __init__(self, w: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))


def _ctx(global_w: list[float], state: dict) -> ClientContext:
    return ClientContext(client_id=0, round=1, info=INFO, global_state={"w": torch.tensor(global_w)},
                         message=Message(), state=state, num_samples=4, label_counts=torch.ones(2), local_epochs=1,
                         lr=0.1, make_model=lambda s: nn.Identity())


def test_regulariser_gradient_is_minus_previous_gradient_plus_alpha_drift() -> None:
    algo = FedDyn(alpha=0.5)
    ctx = _ctx([1.0, 2.0], {_GRAD: {"w": torch.tensor([0.3, -0.4])}})
    model = One([2.0, 0.0])
    zero = torch.zeros(())
    extra = algo.local_loss(ctx, model, Batch(zero, zero, zero, zero, zero))
    extra.backward()
    # d/dw [ -<g, w - wg> + a/2 ||w - wg||^2 ] = -g + a (w - wg) = [-0.3 + 0.5, 0.4 - 1.0]
    assert torch.allclose(model.w.grad, torch.tensor([0.2, -0.6]))
    # value: -(0.3*1 - 0.4*-2) + 0.25 * (1 + 4) = -1.1 + 1.25
    assert torch.isclose(extra, torch.tensor(0.15))


def test_client_state_starts_at_zero_and_moves_by_minus_alpha_drift() -> None:
    algo = FedDyn(alpha=0.5)
    ctx = _ctx([1.0, 2.0], {})
    algo.begin_client(ctx)
    assert torch.equal(ctx.state[_GRAD]["w"], torch.zeros(2))
    algo.end_client(ctx, One([2.0, 0.0]))
    assert torch.allclose(ctx.state[_GRAD]["w"], torch.tensor([-0.5, 1.0]))  # 0 - 0.5 * ([2, 0] - [1, 2])
    algo.end_client(ctx, One([2.0, 0.0]))
    assert torch.allclose(ctx.state[_GRAD]["w"], torch.tensor([-1.0, 2.0]))


def test_server_keeps_h_and_corrects_the_mean() -> None:
    algo = FedDyn(alpha=0.1)
    g = {"w": torch.tensor([0.0, 1.0])}
    algo.init_server(g, ServerContext(0, INFO, 4))
    ups = [ClientUpdate(0, {"w": torch.tensor([1.0, 1.0])}, 10), ClientUpdate(1, {"w": torch.tensor([3.0, 3.0])}, 30)]
    out = algo.aggregate(g, ups, ServerContext(1, INFO, 4, (0, 1), (10, 30, 5, 5)))
    # unweighted mean [2, 2]; h = 0 - 0.1 / 4 * ([1, 0] + [3, 2]) = [-0.1, -0.05]
    assert torch.allclose(algo.h_["w"], torch.tensor([-0.1, -0.05]))
    # theta = mean - h / alpha = [2, 2] + [1, 0.5]
    assert torch.allclose(out["w"], torch.tensor([3.0, 2.5]))
    # next round: no change from the clients still moves the model by -h/alpha (momentum-like)
    out2 = algo.aggregate(out, [ClientUpdate(0, dict(out), 10)], ServerContext(2, INFO, 4, (0,), (10, 30, 5, 5)))
    assert torch.allclose(out2["w"], out["w"] + torch.tensor([1.0, 0.5]))


def test_two_rounds_through_the_engine_keep_client_state() -> None:
    engine, result = run_engine(get_algorithm("feddyn"), dummy_federation(), rounds=2)
    assert len(result.history) == 2
    for s in engine.client_states.values():
        assert set(s[_GRAD]) == set(engine.info.param_keys)
        assert any(v.abs().max() > 0 for v in s[_GRAD].values())
    assert any(v.abs().max() > 0 for v in engine.algo.h_.values())
