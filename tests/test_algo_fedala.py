"""FedALA: the mixing weights W learn to keep a client's own head when the global head is bad, and
local training starts from theta_i + (theta_g - theta_i) * W on the top layers only."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from algorithms.api import PERSONAL_STATE, Batch, ClientContext, Message
from algorithms.fedala import _W, FedALA
from algorithms.testing import dummy_federation, dummy_info, run_engine
from fl_core.models import clone_state, create_model, load_state

torch.set_num_threads(1)


def _batch(model, x, y):
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    logits = model.get_classifier()(feats)
    return Batch(x, y, logits, feats, F.cross_entropy(logits, y), torch.arange(len(y)))


def test_weights_move_towards_the_clients_own_head_when_the_global_head_is_wrong() -> None:
    torch.manual_seed(0)
    info = dummy_info()
    model = create_model("tiny_cnn", 3)
    x, y = torch.randn(16, 3, 16, 16), torch.arange(3).repeat(6)[:16]
    head = [p for n, p in model.named_parameters() if n in info.head_keys]
    opt = torch.optim.SGD(head, lr=0.1)
    for _ in range(10):  # the client's own head fits its data
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    own = clone_state(model.state_dict())
    glob = {k: (-v if k in info.head_keys else v.clone()) for k, v in own.items()}  # a wrong global head
    load_state(model, glob)
    algo = FedALA(rand_percent=100)
    ctx = ClientContext(0, 2, info, glob, Message(), {PERSONAL_STATE: own}, 16, torch.ones(3), 1, 0.1,
                        lambda s: model)
    phases = algo.local_phases(ctx)
    assert phases[0].trainable == frozenset(info.head_keys) and phases[0].epochs == algo.max_init_epochs
    algo.begin_client(ctx)
    ctx.phase = phases[0]
    losses = []
    for _ in range(5):
        loss = algo.local_loss(ctx, model, _batch(model, x, y))
        loss.backward()
        algo.after_backward(ctx, model)
        losses.append(float(loss.detach()))
    w = ctx.state[_W]
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert all(float(t.min()) >= 0 and float(t.max()) <= 1 for t in w.values())
    assert float(w["head.weight"].mean()) < 0.99, "W moves towards 0: keep the own head"
    state = model.state_dict()
    for k in info.head_keys:
        assert torch.allclose(state[k], own[k] + (glob[k] - own[k]) * w[k], atol=1e-6)
    for k in set(info.param_keys) - set(info.head_keys):
        assert torch.equal(state[k], glob[k]), f"lower layer {k} must take the global weights"


def test_first_round_skips_ala_and_later_rounds_keep_learnt_weights() -> None:
    engine, result = run_engine(FedALA(max_init_epochs=2), dummy_federation(), rounds=2)
    for state in engine.client_states.values():
        assert PERSONAL_STATE in state and _W in state
        w = state[_W]["head.weight"]
        assert float(w.min()) >= 0 and float(w.max()) <= 1
        assert not torch.equal(w, torch.ones_like(w)), "W was learnt in round 2"
    assert result.history[-1]["personal"] != result.history[-1]["global"]
