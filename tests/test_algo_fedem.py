"""FedEM: E-step responsibilities, q-weighted component training, per-client mixture prediction."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from algorithms.api import Batch, ClientContext, EvalContext, Message, Phase
from algorithms.fedem import PI, FedEM, Mixture, responsibilities
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, run_engine
from fl_core.models import create_model

torch.set_num_threads(1)


def test_e_step_is_pi_times_likelihood_normalised() -> None:
    q = responsibilities(torch.tensor([[0.0, math.log(2.0)], [math.log(3.0), 0.0]]), torch.tensor([0.5, 0.5]))
    assert torch.allclose(q, torch.tensor([[2 / 3, 1 / 3], [1 / 4, 3 / 4]]))
    q = responsibilities(torch.zeros(1, 2), torch.tensor([0.8, 0.2]))
    assert torch.allclose(q, torch.tensor([[0.8, 0.2]]))


def test_prediction_is_the_clients_mixture_of_component_probabilities() -> None:
    torch.manual_seed(0)
    mix = Mixture(create_model("tiny_cnn", 3), 2).eval()
    x, pi = torch.randn(4, 3, 16, 16), torch.tensor([0.3, 0.7])
    want = 0.3 * F.softmax(mix.components[0](x), 1) + 0.7 * F.softmax(mix.components[1](x), 1)
    ectx = EvalContext(0, dummy_info(), "personal", {}, {PI: {"pi": pi}}, lambda s: None)
    assert torch.allclose(FedEM(n_components=2).evaluation_logits(ectx, mix, x).exp(), want, atol=1e-6)
    assert not torch.equal(mix.components[0].head.weight, mix.components[1].head.weight), "re-initialised"


def test_each_component_learns_from_the_examples_it_is_responsible_for() -> None:
    torch.manual_seed(0)
    mix = Mixture(create_model("tiny_cnn", 3), 2).train()
    ctx = ClientContext(client_id=0, round=1, info=dummy_info(), global_state={}, message=Message(), state={},
                        num_samples=4, label_counts=torch.ones(3), local_epochs=1, lr=0.1,
                        make_model=lambda s: None, phase=Phase(epochs=1))
    ctx.scratch["q"] = torch.tensor([[1.0, 0.0]] * 4)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    FedEM(n_components=2).local_loss(ctx, mix, Batch(x, y, torch.zeros(1), x, torch.zeros(()), torch.arange(4))).backward()
    assert mix.components[0].head.weight.grad.abs().sum() > 0
    assert mix.components[1].head.weight.grad is None or mix.components[1].head.weight.grad.abs().sum() == 0


def test_a_round_sets_pi_to_the_mean_responsibility_and_averages_components() -> None:
    engine, result = run_engine(get_algorithm("fedem"), dummy_federation(), rounds=1)
    for state in engine.client_states.values():
        pi = state[PI]["pi"]
        assert torch.isclose(pi.sum(), torch.tensor(1.0)) and not torch.allclose(pi, torch.full((3,), 1 / 3))
    assert any(k.startswith("components.2.") for k in engine.global_state)
    assert "personal" in result.history[0]
