"""FedBABU: the head never moves during federated training; personalisation fine-tunes the whole model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from algorithms.api import PERSONAL_STATE, Batch, ClientContext
from algorithms.fedbabu import FedBABU
from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, initial_state, run_engine

torch.set_num_threads(1)


def test_head_stays_at_its_initialisation_while_the_body_trains() -> None:
    data = dummy_federation()
    seen: list[tuple[str, dict[str, Tensor]]] = []

    class Spy(FedBABU):
        def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
            seen.append((ctx.phase.model, {k: v.detach().clone() for k, v in model.state_dict().items()}))
            return batch.loss

    Spy.name = "fedbabu"
    engine, result = run_engine(Spy(finetune_epochs=1), data, rounds=2)
    g0 = initial_state(data)
    info = engine.info
    for kind, sd in seen:
        if kind == "global":
            assert all(torch.equal(sd[k], g0[k]) for k in info.head_keys), "the head moved in federated training"
    body = [k for k in info.param_keys if k not in info.head_keys]
    assert all(torch.equal(engine.global_state[k], g0[k]) for k in info.head_keys), "the global head moved"
    assert any(not torch.equal(engine.global_state[k], g0[k]) for k in body), "the body did not train"
    # personalisation: the fine-tuned copy moves the head too, and differs per client
    for c in engine.clients:
        pers = c.state[PERSONAL_STATE]
        assert not torch.equal(pers["head.weight"], g0["head.weight"])
    assert not torch.equal(engine.clients[0].state[PERSONAL_STATE]["head.weight"],
                           engine.clients[1].state[PERSONAL_STATE]["head.weight"])
    assert result.history[-1]["personal"] != result.history[-1]["global"]


def test_fine_tuning_restarts_from_the_rounds_global_weights() -> None:
    starts: dict[int, dict[str, Tensor]] = {}
    received: dict[int, dict[str, Tensor]] = {}

    class Spy(FedBABU):
        def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
            if ctx.client_id == 0 and ctx.phase.model == "personal" and ctx.round not in starts:
                starts[ctx.round] = {k: v.detach().clone() for k, v in model.state_dict().items()}
                received[ctx.round] = {k: v.clone() for k, v in ctx.global_state.items()}
            return batch.loss

    Spy.name = "fedbabu"
    run_engine(Spy(finetune_epochs=1), dummy_federation(), rounds=2)
    for rnd in (1, 2):
        k = "head.weight"
        assert torch.equal(starts[rnd][k], received[rnd][k]), f"round {rnd} fine-tuning did not start from the global"
    assert not torch.equal(starts[2]["body.0.weight"], starts[1]["body.0.weight"])


def test_finetune_epochs_must_not_be_negative() -> None:
    import pytest

    with pytest.raises(ValueError, match="finetune_epochs"):
        get_algorithm("fedbabu", finetune_epochs=-1)
