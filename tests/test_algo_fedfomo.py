"""FedFomo: peers weighted by validation-loss gain per distance; the client starts from that combination."""

from __future__ import annotations

import pytest
import torch

from algorithms.fedfomo import FOMO, PEER, FedFomo, fomo_weights
from algorithms.testing import RecordingTransport, dummy_federation, run_engine

torch.set_num_threads(1)


def test_weights_are_loss_gain_per_distance_normalised() -> None:
    # own loss 1.0; peer A: loss 0.5 at distance 1 -> 0.5; peer B: loss 0.8 at distance 0.4 -> 0.5; peer C worse
    assert fomo_weights(1.0, [0.5, 0.8, 1.5], [1.0, 0.4, 0.1]) == pytest.approx([0.5, 0.5, 0.0])
    assert fomo_weights(1.0, [1.2, 1.5], [1.0, 1.0]) == [0.0, 0.0], "no helpful peer: keep the own model"


def test_server_relays_peers_and_accumulates_affinity() -> None:
    rec = RecordingTransport()
    engine, _ = run_engine(FedFomo(m=1, epsilon=0.0), dummy_federation(num_clients=3), rounds=2, transport=rec)
    assert all(not m.arrays for _, m in rec.sent[:3]), "round 1: no peer models yet"
    for cid, (weights, message) in enumerate(rec.sent[3:]):
        assert all(torch.equal(weights[k], v) for k, v in rec.received[cid].weights.items()), "own last model"
        (group,) = list(message.arrays)
        j = int(group[len(PEER):])
        assert j != cid and all(torch.equal(message.arrays[group][k], v) for k, v in rec.received[j].weights.items())
        fomo = rec.received[3 + cid].message.arrays[FOMO]
        assert fomo["ids"].tolist() == [j]
        assert float(engine.algo.affinity_[cid, j]) == float(fomo["w"][0])


def test_client_starts_training_from_its_first_order_combination() -> None:
    """After the scoring pass the model is theta_i + sum_j w_j (theta_j - theta_i); spied via after_phase."""
    seen = {}

    class Spy(FedFomo):
        def after_phase(self, ctx, model):
            before = {k: v.clone() for k, v in model.state_dict().items()}
            super().after_phase(ctx, model)
            if ctx.phase.kind == "observe":
                seen[ctx.client_id] = (before, {k: v.clone() for k, v in model.state_dict().items()},
                                       ctx.scratch.get("w"), dict(ctx.message.arrays))

    Spy.name = "fedfomo"
    run_engine(Spy(m=2, epsilon=0.0), dummy_federation(num_clients=3), rounds=2)
    moved = False
    for before, after, w, arrays in seen.values():
        peers = sorted(arrays)
        want = {k: v + sum(wj * (arrays[p][k] - v) for wj, p in zip(w, peers)) for k, v in before.items()
                if v.is_floating_point()}
        assert all(torch.allclose(after[k], want[k], atol=1e-6) for k in want)
        moved = moved or any(wj > 0 for wj in w)
    assert seen and moved, "some client found a helpful peer"
