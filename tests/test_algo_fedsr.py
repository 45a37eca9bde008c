"""FedSR: the loss is cross-entropy + alpha_l2r E||z||^2 + alpha_cmi KL(p(z|x) || r(z|y)), on a wrapper
whose representation is Gaussian (sampled in training, its mean in evaluation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import Batch, features
from algorithms.fedsr import FedSR, ProbabilisticModel, gaussian_kl
from algorithms.testing import dummy_federation, run_engine
from fl_core.models import create_model

torch.set_num_threads(1)


def test_gaussian_kl_matches_the_closed_form_in_one_dimension() -> None:
    kl = gaussian_kl(torch.tensor([[1.0]]), torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]))
    assert torch.allclose(kl, torch.tensor([-torch.log(torch.tensor(2.0)) + (4 + 1) / 2 - 0.5]))
    assert float(gaussian_kl(torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 3), torch.ones(1, 3))) == 0.0


def test_loss_adds_both_regularisers_computed_by_hand() -> None:
    torch.manual_seed(0)
    algo = FedSR(alpha_l2r=0.1, alpha_cmi=0.2)
    model = algo.build_model(create_model("tiny_cnn", 3))
    assert isinstance(model, ProbabilisticModel) and "r_mu" in model.state_dict()
    model.eval()  # z is the mean: the same z in the pass below and in the hand computation
    x, y = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    feats, logits = features(model, x)
    mu, sigma = model.last
    assert torch.equal(feats, mu)
    ce = F.cross_entropy(logits, y)
    loss = algo.local_loss(None, model, Batch(x, y, logits, feats, ce))  # type: ignore[arg-type]
    r_sigma = F.softplus(model.r_sigma[y]) + 1e-6
    expected = ce + 0.1 * (mu ** 2).sum(1).mean() + 0.2 * gaussian_kl(mu, sigma, model.r_mu[y], r_sigma).mean()
    assert torch.allclose(loss, expected)
    assert float(loss.detach()) > float(ce.detach()) + 1e-4
    loss.backward()
    assert model.r_mu.grad is not None and float(model.r_mu.grad.abs().sum()) > 0, "the references learn"


def test_training_samples_z_and_learns_the_reference_gaussians() -> None:
    model = FedSR().build_model(create_model("tiny_cnn", 3)).train()
    x = torch.randn(4, 3, 16, 16)
    assert not torch.equal(features(model, x)[0], features(model, x)[0]), "z is sampled in training"
    engine, _ = run_engine(FedSR(alpha_cmi=0.1), dummy_federation(), rounds=1)
    assert not torch.equal(engine.global_state["r_mu"], torch.zeros_like(engine.global_state["r_mu"]))
