"""MOON: the model-contrastive term, its values by hand, and its use across rounds."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from algorithms.api import Batch, ClientContext
from algorithms.moon import _PREV, Moon
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, run_engine

torch.set_num_threads(1)


def test_contrastive_value_by_hand() -> None:
    z = torch.tensor([[1.0, 0.0]])
    loss = Moon(tau=0.5).contrastive(z, torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
    # sim(z, z_glob) = 1, sim(z, z_prev) = 0: -log(e^2 / (e^2 + e^0)) = log(1 + e^-2)
    assert math.isclose(loss.item(), math.log1p(math.exp(-2.0)), rel_tol=1e-6)


def test_contrastive_is_positive_with_non_zero_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 8, generator=g, requires_grad=True)
    z_glob, z_prev = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    loss = Moon().contrastive(z, z_glob, z_prev)
    assert loss.item() > 0
    loss.backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_contrastive_decreases_as_features_move_to_the_global_model() -> None:
    algo = Moon()
    z_glob, z_prev = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    angles = torch.linspace(math.pi / 2, 0, 7)  # from the previous model's features to the global's
    losses = [algo.contrastive(torch.stack([a.cos(), a.sin()]).view(1, 2), z_glob, z_prev).item() for a in angles]
    assert all(a > b for a, b in itertools.pairwise(losses)), losses
    # and in general: at the negative the loss is >= log 2, at the positive <= log 2
    g = torch.Generator().manual_seed(1)
    zg, zp = torch.randn(16, 4, generator=g), torch.randn(16, 4, generator=g)
    assert algo.contrastive(zp, zg, zp).item() >= math.log(2) >= algo.contrastive(zg, zg, zp).item()


def test_first_round_has_no_term_and_later_rounds_add_it() -> None:
    seen: list[tuple[int, Tensor, Tensor]] = []

    class Spy(Moon):
        def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
            out = super().local_loss(ctx, model, batch)
            seen.append((ctx.round, batch.loss.detach(), out.detach()))
            return out

    Spy.name = "moon"
    engine, _ = run_engine(Spy(), dummy_federation(), rounds=2)
    first = [(a, b) for r, a, b in seen if r == 1]
    second = [(a, b) for r, a, b in seen if r == 2]
    assert first and second
    assert all(torch.equal(a, b) for a, b in first), "round 1 has no previous model: plain cross-entropy"
    assert all(b > a for a, b in second), "round 2 adds a positive contrastive term"
    for s in engine.client_states.values():
        assert _PREV in s and set(s[_PREV]) == set(engine.global_state)
        k = engine.info.param_keys[0]
        assert not torch.equal(s[_PREV][k], engine.global_state[k]), "the negative is the local model"


def test_mu_zero_is_fedavg() -> None:
    data = dummy_federation()
    e_m, _ = run_engine(get_algorithm("moon", mu=0.0), data, rounds=2, seed=2)
    e_a, _ = run_engine(get_algorithm("fedavg"), data, rounds=2, seed=2)
    for k, v in e_a.global_state.items():
        assert torch.equal(e_m.global_state[k], v), k
