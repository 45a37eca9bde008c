"""FedRoD: balanced-softmax generic head (averaged) and a personal head on top of the generic logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import Batch, ClientContext, EvalContext, Message
from algorithms.fedrod import PERSONAL_HEAD, balanced_softmax_loss
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, run_engine
from fl_core.models import create_model, model_info

torch.set_num_threads(1)


def _setup():
    algo = get_algorithm("fedrod")
    model = algo.build_model(create_model("tiny_cnn", 3))
    info = model_info(model, 3)
    ctx = ClientContext(client_id=0, round=1, info=info, global_state={}, message=Message(), state={},
                        num_samples=10, label_counts=torch.tensor([8.0, 2.0, 0.0]), local_epochs=1, lr=0.1,
                        make_model=lambda s: model)
    return algo, model, info, ctx


def test_balanced_softmax_adds_the_log_class_counts_and_drops_absent_classes() -> None:
    logits = torch.tensor([[1.0, 0.0, 3.0], [0.0, 2.0, 5.0]])
    y = torch.tensor([0, 1])
    counts = torch.tensor([8.0, 2.0, 0.0])
    hand = torch.stack([-(1 + torch.log(torch.tensor(8.0))) + torch.logsumexp(
        torch.tensor([1 + torch.log(torch.tensor(8.0)), torch.log(torch.tensor(2.0))]), 0),
        -(2 + torch.log(torch.tensor(2.0))) + torch.logsumexp(
        torch.tensor([torch.log(torch.tensor(8.0)), 2 + torch.log(torch.tensor(2.0))]), 0)]).mean()
    assert torch.allclose(balanced_softmax_loss(logits, y, counts), hand)
    assert not torch.allclose(hand, F.cross_entropy(logits, y))


def test_local_loss_is_balanced_generic_plus_personal_on_detached_inputs() -> None:
    algo, model, info, ctx = _setup()
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 0, 1, 0])
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    logits = model.get_classifier()(feats)
    loss = algo.local_loss(ctx, model, Batch(x, y, logits, feats, F.cross_entropy(logits, y)))
    expected = balanced_softmax_loss(logits, y, ctx.label_counts) + F.cross_entropy(logits, y)  # zero personal head
    assert torch.allclose(loss, expected)
    with torch.no_grad():                      # a non-zero personal head, so a leak through it would show
        getattr(model, PERSONAL_HEAD).weight.normal_()
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    logits = model.get_classifier()(feats)
    shared = [model.body[0].weight, model.head.weight]
    total = torch.autograd.grad(algo.local_loss(ctx, model, Batch(x, y, logits, feats, F.cross_entropy(logits, y))),
                                [*shared, getattr(model, PERSONAL_HEAD).weight], retain_graph=True)
    generic_only = torch.autograd.grad(balanced_softmax_loss(logits, y, ctx.label_counts), shared)
    for a, b in zip(total, generic_only):
        assert torch.allclose(a, b, atol=1e-6), "the personal loss reached the body or the generic head"
    assert total[2].abs().sum() > 0, "the personal head gets no gradient"
    assert algo.local_keys(info) == {f"{PERSONAL_HEAD}.weight", f"{PERSONAL_HEAD}.bias"}


def test_personal_evaluation_adds_the_personal_head_and_a_round_keeps_it_local() -> None:
    algo, model, info, _ = _setup()
    with torch.no_grad():
        getattr(model, PERSONAL_HEAD).bias.fill_(1.5)
    x = torch.randn(2, 3, 16, 16)
    g = algo.evaluation_logits(EvalContext(0, info, "global", {}, {}, lambda s: model), model, x)
    p = algo.evaluation_logits(EvalContext(0, info, "personal", {}, {}, lambda s: model), model, x)
    assert torch.allclose(g, model(x)) and torch.allclose(p, g + 1.5)
    engine, _ = run_engine(get_algorithm("fedrod"), dummy_federation(), rounds=2)
    w = f"{PERSONAL_HEAD}.weight"
    assert not torch.equal(engine.local_states[0][w], engine.local_states[1][w])
    assert torch.count_nonzero(engine.global_state[w]) == 0, "the server's personal head is never trained"
