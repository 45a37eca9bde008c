"""FedPAC: classifier combination weights favour similar, low-variance clients; heads are sent per client."""

from __future__ import annotations

import torch

from algorithms.api import Batch, ClientContext, Message
from algorithms.fedpac import FedPAC, collaboration_weights, simplex_projection
from algorithms.fedproto import GLOBAL
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, run_engine

torch.set_num_threads(1)


def _stats(far: float):
    means = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], [[far, far], [-far, far]]],
                         dtype=torch.float64)
    counts = torch.tensor([[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]], dtype=torch.float64)
    return means, counts


def test_weights_split_between_identical_clients_and_avoid_a_different_one() -> None:
    means, counts = _stats(far=30.0)
    alpha = collaboration_weights(means, counts, torch.full((3,), 0.1, dtype=torch.float64), 0)
    # bias is zero on clients 0 and 1, 1741 a2^2 on 2: the optimum a2 = 0.1 / 3482.2 is below 1e-3, dropped;
    # equal variances then give 0.1 (a0^2 + a1^2) -> 1/2, 1/2
    assert torch.allclose(alpha, torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64), atol=1e-4)


def test_a_noisy_twin_gets_less_weight_and_a_unique_client_keeps_its_own() -> None:
    means, counts = _stats(far=30.0)
    alpha = collaboration_weights(means, counts, torch.tensor([0.1, 0.3, 0.1], dtype=torch.float64), 0)
    assert torch.allclose(alpha[:2], torch.tensor([0.75, 0.25], dtype=torch.float64), atol=1e-4)  # 0.1a = 0.3b
    alone = collaboration_weights(means, counts, torch.full((3,), 0.1, dtype=torch.float64), 2)
    assert torch.allclose(alone, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-4)
    assert torch.allclose(simplex_projection(torch.tensor([2.0, 0.0])), torch.tensor([1.0, 0.0]))


def test_each_client_starts_its_round_from_its_own_combined_classifier() -> None:
    rec = RecordingTransport()
    run_engine(FedPAC(), dummy_federation(num_clients=3), rounds=2, transport=rec)
    round1 = [u.weights["head.weight"] for u in rec.received[:3]]
    stats = [u.message.arrays["pac_stats"] for u in rec.received[:3]]
    means = torch.stack([s["mean"].double() for s in stats])
    counts = torch.stack([s["count"].double() for s in stats])
    variances = torch.cat([s["variance"].double() for s in stats])
    for cid in range(3):
        alpha = collaboration_weights(means, counts, variances, cid)
        want = sum(float(a) * h for a, h in zip(alpha, round1))
        assert torch.allclose(rec.sent[3 + cid][0]["head.weight"], want, atol=1e-5), cid
    mean = sum(round1) / 3
    assert any(not torch.allclose(rec.sent[3 + c][0]["head.weight"], mean) for c in range(3))
    assert torch.equal(rec.sent[3][0]["body.0.weight"], rec.sent[4][0]["body.0.weight"]), "shared extractor"
    assert GLOBAL in rec.sent[3][1].arrays and GLOBAL not in rec.sent[0][1].arrays


def test_alignment_only_when_training_the_extractor() -> None:
    info = dummy_info()
    protos = {"mean": torch.zeros(3, 2), "count": torch.ones(3)}
    ctx = ClientContext(client_id=0, round=2, info=info, global_state={}, message=Message(arrays={GLOBAL: protos}),
                        state={}, num_samples=2, label_counts=torch.ones(3), local_epochs=1, lr=0.1,
                        make_model=lambda s: None)
    b = Batch(torch.zeros(2), torch.tensor([0, 1]), torch.zeros(2, 3), torch.ones(2, 2), torch.tensor(0.5))
    head, body = FedPAC().local_phases(ctx)[:2]
    ctx.phase = head
    assert FedPAC().local_loss(ctx, None, b) is b.loss
    ctx.phase = body
    assert torch.isclose(FedPAC(lam=2.0).local_loss(ctx, None, b), torch.tensor(0.5 + 2.0 * 1.0))
