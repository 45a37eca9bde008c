"""FedRep: head phase with the body frozen, then body phase with the head frozen; head stays local."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from algorithms.api import Batch, ClientContext, Message
from algorithms.fedrep import FedRep
from algorithms.testing import dummy_federation, dummy_info, run_engine
from tests.tensor_asserts import assert_same_tensors

torch.set_num_threads(1)


def test_phases_are_head_then_body() -> None:
    info = dummy_info()
    ctx = ClientContext(client_id=0, round=1, info=info, global_state={}, message=Message(), state={}, num_samples=8,
                        label_counts=torch.ones(3), local_epochs=1, lr=0.1, make_model=lambda s: nn.Identity())
    head, body = FedRep(head_epochs=10, body_epochs=1).local_phases(ctx)
    assert (head.epochs, body.epochs) == (10, 1)
    assert head.trainable == frozenset(info.head_keys)
    assert body.trainable == frozenset(info.param_keys) - frozenset(info.head_keys)
    assert FedRep().local_keys(info) == frozenset(info.head_keys)


def test_frozen_part_does_not_move_during_each_phase() -> None:
    snaps: list[tuple[int, int, dict[str, Tensor]]] = []  # (round, phase index, params before the step)

    class Spy(FedRep):
        def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
            if ctx.client_id == 0:
                idx = 0 if ctx.phase.trainable == frozenset(ctx.info.head_keys) else 1
                snaps.append((ctx.round, idx, {n: p.detach().clone() for n, p in model.named_parameters()}))
            return batch.loss

    Spy.name = "fedrep"
    engine, _ = run_engine(Spy(head_epochs=2, body_epochs=1), dummy_federation(), rounds=2)
    info = engine.info
    head = set(info.head_keys)
    body = set(info.param_keys) - head
    assert head and body, "FedRep needs both a head and a body to alternate"
    for rnd in (1, 2):
        phases = [i for r, i, _ in snaps if r == rnd]
        assert phases == sorted(phases) and set(phases) == {0, 1}, "head phase first, then body phase"
        head_phase = [s for r, i, s in snaps if r == rnd and i == 0]
        body_phase = [s for r, i, s in snaps if r == rnd and i == 1]
        for s in head_phase:
            assert_same_tensors(s, head_phase[0], keys=body, what="body during the head phase")
        assert any(not torch.equal(head_phase[-1][k], head_phase[0][k]) for k in head), "head did not train"
        for s in body_phase:
            assert_same_tensors(s, body_phase[0], keys=head, what="head during the body phase")
        assert any(not torch.equal(body_phase[-1][k], body_phase[0][k]) for k in body), "body did not train"
    # the head is personal: the server's head is never trained, each client keeps its own
    for own in engine.local_states.values():
        assert set(own) == head
    k = info.head_keys[0]
    assert not torch.equal(engine.local_states[0][k], engine.local_states[1][k])
    initial = next(s for r, i, s in snaps if r == 1)
    round2_start = next(s for r, i, s in snaps if r == 2)
    assert torch.equal(engine.global_state[k], initial[k]), "the global head is never averaged or trained"
    assert not torch.equal(round2_start[k], initial[k]), "round 2 starts from the client's own head"
