"""Per-FedAvg: the local step is the MAML step; personal evaluation is one adaptation step."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import Batch, ClientContext, Message, Phase
from algorithms.perfedavg import PerFedAvg
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine
from fl_core.models import create_model, load_state

torch.set_num_threads(1)


def _model(state):
    m = create_model("tiny_cnn", 3)
    load_state(m, state)
    m.eval()  # fixed BatchNorm statistics so the hand computation sees the same forward
    return m


def _ctx(rnd: int = 1) -> ClientContext:
    return ClientContext(client_id=0, round=rnd, info=dummy_info(), global_state={}, message=Message(), state={},
                         num_samples=8, label_counts=torch.ones(3), local_epochs=1, lr=0.1,
                         make_model=lambda s: None, phase=Phase(epochs=1))


def _batch(m):
    x, y = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0] * 2)
    return Batch(x, y, m(x), x, F.cross_entropy(m(x), y))


def test_first_order_gradient_is_the_gradient_at_the_adapted_point() -> None:
    w = dummy_state(0)
    m = _model(w)
    b = _batch(m)
    PerFedAvg(alpha=0.5).local_loss(_ctx(), m, b).backward()
    # by hand: one step of 0.5 on the first half, gradient of the second half at that point
    ref = _model(w)
    F.cross_entropy(ref(b.x[:4]), b.y[:4]).backward()
    adapted = _model({k: v - 0.5 * dict(ref.named_parameters())[k].grad if k in dict(ref.named_parameters()) else v
                      for k, v in w.items()})
    F.cross_entropy(adapted(b.x[4:]), b.y[4:]).backward()
    want = dict(adapted.named_parameters())
    plain = _model(w)
    F.cross_entropy(plain(b.x), b.y).backward()
    plain_g = dict(plain.named_parameters())
    for n, p in m.named_parameters():
        assert torch.allclose(p.grad, want[n].grad, atol=1e-5), n
    assert any(not torch.allclose(p.grad, plain_g[n].grad, atol=1e-3) for n, p in m.named_parameters())


def test_hessian_free_version_differs_from_first_order() -> None:
    w = dummy_state(0)
    fo, hf = _model(w), _model(w)
    PerFedAvg(alpha=0.5, version="fo").local_loss(_ctx(), fo, _batch(fo)).backward()
    PerFedAvg(alpha=0.5, version="hf").local_loss(_ctx(), hf, _batch(hf)).backward()
    gap = sum(float((a.grad - b.grad).abs().sum()) for a, b in zip(fo.parameters(), hf.parameters()))
    assert gap > 1e-4


def test_personal_evaluation_takes_exactly_one_step_from_the_global_model() -> None:
    data = dummy_federation()
    engine, result = run_engine(get_algorithm("perfedavg"), data, rounds=1)
    client = engine.clients[0]
    adapted = client._adapted(engine.global_state)
    moved = sum(float((adapted[k] - engine.global_state[k]).abs().sum()) for k in engine.info.param_keys)
    assert moved > 0, "the personalised model is adapted"
    assert "personal" in result.history[0] and client.has_personal
    assert all(torch.equal(client._adapted(engine.global_state)[k], v) for k, v in adapted.items()), "seeded"
    two = PerFedAvg()
    two.adapt_phases = lambda ctx: [Phase(epochs=1, lr=ctx.lr, max_steps=2)]
    client.algo = two
    assert not torch.equal(client._adapted(engine.global_state)["head.bias"], adapted["head.bias"])
