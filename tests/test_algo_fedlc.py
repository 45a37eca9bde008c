"""FedLC: the calibrated loss shifts logits by tau * n_c^(-1/4), absent classes leave the softmax."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from algorithms.api import Batch, ClientContext, Message
from algorithms.fedlc import FedLC
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, dummy_info, run_engine
from fl_core.data import ClientData, FederatedData, Split

torch.set_num_threads(1)


def _ctx(counts: list[int]) -> ClientContext:
    return ClientContext(client_id=0, round=1, info=dummy_info(), global_state={}, message=Message(), state={},
                         num_samples=sum(counts), label_counts=torch.tensor(counts), local_epochs=1, lr=0.1,
                         make_model=lambda s: nn.Identity())


def _loss(algo: FedLC, counts: list[int], logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return algo.local_loss(_ctx(counts), nn.Identity(), Batch(logits, y, logits, logits, F.cross_entropy(logits, y)))


def test_offsets_follow_the_formula() -> None:
    logits = torch.zeros(1, 3)
    cal = FedLC(tau=2.0).calibrated(logits, torch.tensor([16, 1, 81]))
    assert torch.allclose(cal, -2.0 * torch.tensor([[16 ** -0.25, 1.0, 81 ** -0.25]]))  # [-1, -2, -2/3]


def test_calibrated_loss_by_hand() -> None:
    logits = torch.tensor([[1.0, 0.5, -0.2]])
    y = torch.tensor([1])
    got = _loss(FedLC(tau=1.0), [16, 1, 81], logits, y).item()
    z = [1.0 - 0.5, 0.5 - 1.0, -0.2 - 1 / 3]
    expect = -z[1] + math.log(sum(math.exp(v) for v in z))
    assert math.isclose(got, expect, rel_tol=1e-6)
    # the rare class (n=1) gets the largest penalty: its loss is above plain cross-entropy
    assert got > F.cross_entropy(logits, y).item()


def test_absent_class_leaves_the_softmax_with_finite_gradients() -> None:
    logits = torch.tensor([[0.3, 5.0, -1.0], [1.0, 2.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 2])
    loss = _loss(FedLC(tau=1.0), [4, 0, 9], logits, y)
    present = logits[:, [0, 2]] - torch.tensor([4 ** -0.25, 9 ** -0.25])
    assert torch.isclose(loss, F.cross_entropy(present, torch.tensor([0, 1])))
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.equal(logits.grad[:, 1], torch.zeros(2)), "an absent class's logit gets no push"


def test_tau_zero_is_plain_cross_entropy() -> None:
    logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0])
    assert torch.allclose(_loss(FedLC(tau=0.0), [3, 0, 1], logits, y), F.cross_entropy(logits, y))


def _drop_class(data: FederatedData, client: int, cls: int) -> FederatedData:
    c = data.clients[client]
    keep = c.train.y != cls
    clients = list(data.clients)
    clients[client] = ClientData(c.name, Split(c.train.x[keep], c.train.y[keep]), c.val, c.test)
    return FederatedData(tuple(clients), data.classes)


def test_two_rounds_with_a_missing_class_differ_from_fedavg() -> None:
    data = _drop_class(dummy_federation(), 0, 2)
    e_lc, r = run_engine(get_algorithm("fedlc"), data, rounds=2, seed=4)
    e_avg, _ = run_engine(get_algorithm("fedavg"), data, rounds=2, seed=4)
    assert all(math.isfinite(h["train_loss"]) for h in r.history)
    k = e_lc.info.head_keys[0]
    assert not torch.allclose(e_lc.global_state[k], e_avg.global_state[k])
