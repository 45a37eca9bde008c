"""FedAS: uploads are weighted by their Fisher traces; the received body is aligned to the client's
previous class prototypes before local training; the head stays on the client."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import Batch, ClientContext, ClientUpdate, Message, Phase, ServerContext
from algorithms.fedas import _PROTO, FIM, FedAS, alignment_loss
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine

torch.set_num_threads(1)


def test_mean_is_weighted_by_the_fisher_traces() -> None:
    info = dummy_info()
    a, b = dummy_state(1), dummy_state(2)
    ups = [ClientUpdate(0, a, 100, Message(config={FIM: 3.0})), ClientUpdate(1, b, 1, Message(config={FIM: 1.0}))]
    out = FedAS().combine(ups, ServerContext(1, info, 2))
    k = info.param_keys[0]
    assert torch.allclose(out[k], 0.75 * a[k] + 0.25 * b[k], atol=1e-6), "weights 3:1 from the traces, not 100:1"


def test_alignment_loss_is_the_per_class_mean_feature_distance_to_the_prototypes() -> None:
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0, 1])
    protos = {"mean": torch.tensor([[2.0, 1.0], [0.0, 0.0], [9.0, 9.0]]), "seen": torch.tensor([1.0, 1.0, 0.0])}
    # class 0: mean (2, 0) vs (2, 1): 0.5; class 1: (0, 2) vs (0, 0): 2.0
    assert torch.allclose(alignment_loss(feats, y, protos), torch.tensor(2.5))


def test_second_round_aligns_the_body_only_then_trains_and_measures() -> None:
    engine, result = run_engine(FedAS(), dummy_federation(), rounds=1)
    info = engine.info
    state = engine.client_states[0]
    assert set(state[_PROTO]) == {"mean", "seen"} and float(state[_PROTO]["seen"].sum()) == 3
    ctx = ClientContext(0, 2, info, {}, Message(), state, 8, torch.ones(3), 1, 0.05, lambda s: None)
    align, train, observe = FedAS().local_phases(ctx)
    assert align.trainable == frozenset(k for k in info.param_keys if k not in info.head_keys)
    assert (train.kind, observe.kind) == ("train", "observe")
    ctx.phase = align
    feats = torch.randn(4, 64, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    logits = torch.randn(4, 3)
    loss = FedAS().local_loss(ctx, None, Batch(torch.zeros(4), y, logits, feats, F.cross_entropy(logits, y)))
    assert torch.allclose(loss, alignment_loss(feats, y, state[_PROTO]))
    assert set(engine.local_states[0]) == set(info.head_keys)
    assert result.history[-1]["personal"] != result.history[-1]["global"]


def test_uploads_carry_a_positive_fisher_trace() -> None:
    from algorithms.testing import RecordingTransport

    rec = RecordingTransport()
    run_engine(FedAS(), dummy_federation(), rounds=1, transport=rec)
    assert all(u.message.config[FIM] > 0 for u in rec.received)
    assert Phase(1, kind="observe") in FedAS().local_phases(
        ClientContext(0, 1, dummy_info(), {}, Message(), {}, 8, torch.ones(3), 1, 0.05, lambda s: None))
