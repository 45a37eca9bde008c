"""APFL: the personalised model is the alpha-mixture of the local and global model, alpha is learned."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.apfl import ALPHA, APFL
from algorithms.api import PERSONAL_STATE, Batch, ClientContext, Message, Phase
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine
from fl_core.models import create_model, load_state

torch.set_num_threads(1)


def test_personalised_model_is_the_alpha_mixture_and_alpha_adapts() -> None:
    engine, _ = run_engine(get_algorithm("apfl"), dummy_federation(), rounds=2)
    algo, g = engine.algo, engine.global_state
    for state in engine.client_states.values():
        alpha = state[ALPHA]
        assert 0.0 <= alpha <= 1.0 and alpha != 0.5, "alpha follows its gradient from 0.5"
        v = state[PERSONAL_STATE]
        pers = algo.personalised_state(g, state, {})
        k = "body.0.weight"
        assert torch.allclose(pers[k], alpha * v[k] + (1 - alpha) * g[k], atol=1e-6)
        assert not torch.allclose(pers[k], g[k]) and not torch.allclose(pers[k], v[k])


def test_fixed_alpha_stays() -> None:
    engine, _ = run_engine(get_algorithm("apfl", adaptive_alpha=False, alpha=0.3), dummy_federation(), rounds=1)
    assert all(s[ALPHA] == 0.3 for s in engine.client_states.values())


def _ctx(global_state: dict) -> ClientContext:
    return ClientContext(client_id=0, round=1, info=dummy_info(), global_state=global_state, message=Message(),
                         state={ALPHA: 0.25}, num_samples=4, label_counts=torch.ones(3), local_epochs=1, lr=0.1,
                         make_model=lambda s: None, phase=Phase(epochs=1, model="personal"))


def test_local_model_gets_alpha_times_the_mixture_gradient_and_alpha_its_own() -> None:
    """grad_v = alpha * grad f(v_bar); d alpha = <v - w, grad f(v_bar)> (Deng et al., Eq. 7)."""
    w, v = dummy_state(0), dummy_state(1)
    model = create_model("tiny_cnn", 3)
    load_state(model, v)
    model.eval()  # fixed BatchNorm statistics: the mixture and the reference see the same forward
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    ctx = _ctx(w)
    loss = APFL().local_loss(ctx, model, Batch(x, y, model(x), x, torch.zeros(())))
    loss.backward()
    ref = create_model("tiny_cnn", 3)
    load_state(ref, {k: 0.25 * v[k] + 0.75 * w[k] if v[k].is_floating_point() else v[k] for k in v})
    ref.eval()
    F.cross_entropy(ref(x), y).backward()
    names = dict(ref.named_parameters())
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, 0.25 * names[n].grad, atol=1e-6), n
    expected = sum(float(((v[n] - w[n]) * names[n].grad).sum()) for n in names)
    assert abs(float(ctx.scratch["alpha"].grad) - expected) < 1e-4
    APFL().after_backward(ctx, model)
    assert abs(ctx.state[ALPHA] - min(1.0, max(0.0, 0.25 - 0.1 * expected))) < 1e-6
