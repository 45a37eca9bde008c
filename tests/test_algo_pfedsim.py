"""pFedSim: extractor mixed by classifier similarity with weights -log(1 - s); classifier stays the client's."""

from __future__ import annotations

import math

import torch

from algorithms.aggregation import weighted_mean
from algorithms.pfedsim import PFedSim, classifier_similarity, mixing_weights
from algorithms.testing import RecordingTransport, dummy_federation, run_engine

torch.set_num_threads(1)


def test_weights_are_minus_log_one_minus_similarity() -> None:
    w = mixing_weights([1.0, 0.5, 0.0], 0)
    raw = [-math.log(1e-4), -math.log(0.5), 0.0]
    assert w is not None and all(abs(a - v / sum(raw)) < 1e-12 for a, v in zip(w, raw))
    assert mixing_weights([1.0, 0.0, 0.0], 0) is None, "no similar peer: keep the own model"


def test_classifier_similarity_is_mean_row_cosine_clipped_at_zero() -> None:
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert classifier_similarity(a, 3 * a) == 1.0
    assert classifier_similarity(a, -a) == 0.0
    assert abs(classifier_similarity(a, torch.tensor([[1.0, 0.0], [1.0, 0.0]])) - 0.5) < 1e-12


def test_after_warm_up_each_client_starts_from_its_similarity_mixture() -> None:
    rec = RecordingTransport()
    engine, _ = run_engine(PFedSim(warmup_rounds=1), dummy_federation(num_clients=3), rounds=3, transport=rec)
    round2 = [w for w, _ in rec.sent[3:6]]
    assert all(torch.equal(round2[0][k], w[k]) for w in round2 for k in w), "warm-up ends in one model"
    ups = [u.weights for u in rec.received[3:6]]  # the models the server keeps after round 2
    sims = [[1.0 if i == j else classifier_similarity(ups[i]["head.weight"], ups[j]["head.weight"]) for j in range(3)]
            for i in range(3)]
    assert any(s > 0 for i, row in enumerate(sims) for j, s in enumerate(row) if i != j), sims
    for cid in range(3):
        sent = rec.sent[6 + cid][0]
        w = mixing_weights(sims[cid], cid)
        want = weighted_mean(ups, w) if w else ups[cid]
        assert torch.allclose(sent["body.0.weight"], want["body.0.weight"], atol=1e-6), cid
        assert torch.equal(sent["head.weight"], ups[cid]["head.weight"]), "own classifier"
    assert not torch.equal(rec.sent[6][0]["body.0.weight"], rec.sent[7][0]["body.0.weight"])
    assert engine.algo.similarity_[0, 1] == classifier_similarity(rec.received[6].weights["head.weight"],
                                                                  rec.received[7].weights["head.weight"])
