"""pFedFDA: the head is the LDA classifier of pooled class Gaussians, the body trains against it
frozen, and each client interpolates its own Gaussians with the global ones."""

from __future__ import annotations

import math

import torch

from algorithms.api import PERSONAL_STATE, ClientUpdate, Message, ServerContext
from algorithms.pfedfda import GLOBAL, STATS, PFedFDA, _stats, gaussians, lda_head
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, dummy_state, run_engine

torch.set_num_threads(1)


def test_lda_head_of_two_unit_gaussians_by_hand() -> None:
    means = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    w, b = lda_head(means, torch.eye(2, dtype=torch.float64), torch.tensor([0.75, 0.25], dtype=torch.float64))
    assert torch.allclose(w, means)
    assert torch.allclose(b, torch.tensor([-0.5 + math.log(0.75), -0.5 + math.log(0.25)], dtype=torch.float64))


def test_server_pools_the_clients_statistics_into_the_global_head() -> None:
    info = dummy_info()
    torch.manual_seed(0)
    f1, f2 = torch.randn(10, 64, dtype=torch.float64), torch.randn(6, 64, dtype=torch.float64) + 1
    y1, y2 = torch.arange(3).repeat(4)[:10], torch.arange(3).repeat(2)
    ups = []
    for cid, (f, y) in enumerate(((f1, y1), (f2, y2))):
        s, n, sc = _stats(f, y, 3)
        ups.append(ClientUpdate(cid, dummy_state(cid), len(y),
                                Message(arrays={STATS: {"sums": s, "counts": n, "scatter": sc}})))
    algo = PFedFDA()
    algo.init_server(dummy_state(0), ServerContext(0, info, 2))
    out = algo.aggregate(dummy_state(0), ups, ServerContext(1, info, 2, (0, 1), (10, 6)))
    pooled = _stats(torch.cat([f1, f2]), torch.cat([y1, y2]), 3)
    means, cov, priors = gaussians(*pooled, 0.1)
    assert torch.allclose(algo.global_["means"], means) and torch.allclose(algo.global_["cov"], cov)
    w, b = lda_head(means, cov, priors)
    assert torch.allclose(out["head.weight"], w.float(), atol=1e-5)
    assert torch.allclose(out["head.bias"], b.float(), atol=1e-5)


def test_second_round_trains_the_body_against_the_frozen_generative_head() -> None:
    rec = RecordingTransport()
    engine, result = run_engine(PFedFDA(), dummy_federation(), rounds=2, transport=rec)
    for (sent, message), up in zip(rec.sent[2:], rec.received[2:]):  # round 2
        assert GLOBAL in message.arrays
        assert torch.equal(up.weights["head.weight"], sent["head.weight"]), "the head is frozen in training"
        assert not torch.equal(up.weights["body.0.weight"], sent["body.0.weight"]), "the body trains"
    for state in engine.client_states.values():
        assert 0.0 <= state["pfedfda_beta"] <= 1.0 and PERSONAL_STATE in state
    assert result.history[-1]["personal"] != result.history[-1]["global"]
