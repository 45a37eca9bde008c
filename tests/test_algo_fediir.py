"""FedIIR: a first pass uploads each client's classifier gradient (nothing trains), the server keeps
their sample-weighted mean (EMA over rounds), and training penalises ||grad_cls - grad_mean||^2."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import Batch, ClientContext, Message, features
from algorithms.fediir import GRAD, GRAD_MEAN, FedIIR
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, initial_state, run_engine
from fl_core.data import normalise
from fl_core.models import create_model, load_state

torch.set_num_threads(1)


def test_first_pass_uploads_the_classifier_gradient_and_trains_nothing() -> None:
    data = dummy_federation(num_clients=2)
    rec = RecordingTransport()
    engine, _ = run_engine(FedIIR(), data, rounds=1, transport=rec)
    first = rec.received[:2]  # stage 0 of round 1, clients 0 and 1
    model = create_model("tiny_cnn", 3)
    load_state(model, initial_state(data))
    model.eval()
    expected = []
    for client, up in zip(data.clients, first):
        assert all(torch.equal(up.weights[k], v) for k, v in initial_state(data).items()), "stage 0 trains nothing"
        logits = model(normalise(client.train.x))
        loss = F.cross_entropy(logits, client.train.y)
        g = dict(zip(engine.info.head_keys, torch.autograd.grad(loss, [model.head.weight, model.head.bias])))
        for k in engine.info.head_keys:
            assert torch.allclose(up.message.arrays[GRAD][k], g[k], atol=1e-5)
        expected.append(g)
    sizes = [len(c.train) for c in data.clients]
    for k in engine.info.head_keys:
        mean = (sizes[0] * expected[0][k] + sizes[1] * expected[1][k]) / sum(sizes)
        assert torch.allclose(engine.algo.grad_mean_[k], mean, atol=1e-5)
        sent = rec.sent[2][1].arrays[GRAD_MEAN][k]  # stage 1 carries the mean to the clients
        assert torch.allclose(sent, mean, atol=1e-5)


def test_penalty_is_the_squared_gap_to_the_mean_gradient() -> None:
    torch.manual_seed(0)
    info = dummy_info()
    model = create_model("tiny_cnn", 3)
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    feats, logits = features(model, x)
    ce = F.cross_entropy(logits, y)
    g = torch.autograd.grad(ce, [model.head.weight, model.head.bias], retain_graph=True)
    target = {"head.weight": torch.zeros_like(g[0]), "head.bias": torch.zeros_like(g[1])}
    ctx = ClientContext(0, 1, info, {}, Message(arrays={GRAD_MEAN: target}), {}, 6, torch.ones(3), 1, 0.1,
                        lambda s: model)
    loss = FedIIR(penalty=0.5).local_loss(ctx, model, Batch(x, y, logits, feats, ce))
    gap = g[0].pow(2).sum() + g[1].pow(2).sum()
    assert float(gap) > 0 and torch.allclose(loss, ce + 0.5 * gap)
    aligned = {"head.weight": g[0].detach(), "head.bias": g[1].detach()}
    ctx.message = Message(arrays={GRAD_MEAN: aligned})
    assert torch.allclose(FedIIR(penalty=0.5).local_loss(ctx, model, Batch(x, y, logits, feats, ce)), ce)


def test_mean_gradient_is_smoothed_across_rounds() -> None:
    data = dummy_federation()
    rec = RecordingTransport()
    engine, _ = run_engine(FedIIR(ema=0.25), data, rounds=2, transport=rec)
    sizes = [float(len(c.train)) for c in data.clients]

    def mean(ups, k):
        return sum(n * u.message.arrays[GRAD][k] for n, u in zip(sizes, ups)) / sum(sizes)

    for k in engine.info.head_keys:  # uploads: r1 stage 0, r1 stage 1, r2 stage 0, r2 stage 1
        expected = 0.25 * mean(rec.received[0:2], k) + 0.75 * mean(rec.received[4:6], k)
        assert torch.allclose(engine.algo.grad_mean_[k], expected, atol=1e-6)
