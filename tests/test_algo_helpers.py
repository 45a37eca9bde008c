"""The shared pure pieces: the proximal term and mean-then-step, checked by hand."""

from __future__ import annotations

import torch
from torch import nn

from algorithms.aggregation import mean_then_step


def test_proximal_term_sums_squared_distances_of_trainable_parameters() -> None:
    from algorithms.regularisers import proximal_term

    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 3.0]]))
        lin.bias.fill_(2.0)
    ref = {"weight": torch.tensor([[0.0, 1.0]]), "bias": torch.tensor([0.0])}
    assert proximal_term(lin, ref).item() == 1.0 + 4.0 + 4.0
    assert proximal_term(lin, ref, keys=["weight"]).item() == 5.0
    lin.bias.requires_grad_(False)  # a frozen parameter (FedRep's head phase) is not pulled
    assert proximal_term(lin, ref).item() == 5.0


def test_mean_then_step_replaces_only_the_stepped_keys() -> None:
    g = {"w": torch.tensor([1.0, 1.0]), "bn.running_mean": torch.tensor([0.0])}
    mean = {"w": torch.tensor([3.0, 5.0]), "bn.running_mean": torch.tensor([2.0])}
    out = mean_then_step(g, mean, ["w"], lambda k, cur, m: cur + 0.5 * (m - cur))
    assert torch.equal(out["w"], torch.tensor([2.0, 3.0]))
    assert torch.equal(out["bn.running_mean"], torch.tensor([2.0])), "buffers keep the plain mean"
    assert torch.equal(mean["w"], torch.tensor([3.0, 5.0])), "the combined weights are not modified"
