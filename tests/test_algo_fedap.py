"""FedAP: weights from BN-statistics distances (self: model_momentum), per-client mixes, BN kept local."""

from __future__ import annotations

import torch

from algorithms.api import ClientUpdate, Message, ModelInfo, ServerContext
from algorithms.fedap import STATS, FedAP, bn_input_statistics, similarity_weights
from algorithms.testing import RecordingTransport, dummy_federation, run_engine
from fl_core.models import create_model

torch.set_num_threads(1)


def _stats(mean: float) -> dict[str, torch.Tensor]:
    """One BN layer, one channel, one value: variance 0, so distances are |mean_i - mean_j|."""
    return {"bn.sum": torch.tensor([mean]), "bn.sq": torch.tensor([mean * mean]), "bn.n": torch.tensor([1.0])}


def test_weights_are_inverse_distances_scaled_to_one_minus_momentum() -> None:
    w = similarity_weights([_stats(0.0), _stats(1.0), _stats(3.0)], momentum=0.5)
    # client 0: d01 = 1, d02 = 3 -> 1/1 : 1/3 = 3/4 : 1/4 of the remaining 0.5
    assert torch.allclose(w[0], torch.tensor([0.5, 0.375, 0.125], dtype=torch.float64))
    assert torch.allclose(w.sum(1), torch.ones(3, dtype=torch.float64))


def test_server_builds_one_model_per_client_and_keeps_its_batchnorm() -> None:
    info = ModelInfo(("a", "bn"), ("a", "bn"), (), ("a", "bn"), (), ("bn",), 2)
    algo = FedAP(model_momentum=0.5)
    algo.init_server({}, ServerContext(0, info, 3))
    ups = [ClientUpdate(i, {"a": torch.tensor([a]), "bn": torch.tensor([b])}, 5, Message(arrays={STATS: _stats(m)}))
           for i, (a, b, m) in enumerate([(0.0, 10.0, 0.0), (4.0, 20.0, 1.0), (8.0, 30.0, 3.0)])]
    server = ServerContext(2, info, 3, (0, 1, 2), (5, 5, 5))
    algo.aggregate({"a": torch.zeros(1), "bn": torch.zeros(1)}, ups, server)
    m0 = algo.client_weights(0, {}, server)
    assert torch.allclose(m0["a"], torch.tensor([0.5 * 0 + 0.375 * 4 + 0.125 * 8]))
    assert torch.equal(m0["bn"], torch.tensor([10.0])), "BatchNorm stays the client's own"


def test_bn_input_statistics_are_the_channel_moments_of_each_bn_input() -> None:
    model = create_model("tiny_cnn", 3).eval()
    x = torch.randn(4, 3, 16, 16)
    sums: dict = {}
    with torch.no_grad():
        bn_input_statistics(model, x, sums)
        z = model.body[0](x)
    assert torch.allclose(sums["body.1.sum"] / sums["body.1.n"], z.mean(dim=(0, 2, 3)), atol=1e-5)
    assert int(sums["body.1.n"]) == 4 * 16 * 16 and "body.9.sq" in sums


def test_statistics_pass_after_warm_up_then_each_client_gets_its_own_start() -> None:
    rec = RecordingTransport()
    run_engine(FedAP(), dummy_federation(num_clients=3), rounds=3, transport=rec)
    flags = [m.config["fedap_stats"] for _, m in rec.sent]
    assert flags == [False] * 3 + [True] * 3 + [False] * 3
    assert [STATS in u.message.arrays for u in rec.received] == flags, "statistics are uploaded once"
    round2 = [w for w, _ in rec.sent[3:6]]
    assert all(torch.equal(round2[0][k], w[k]) for w in round2 for k in w), "warm-up: one common model"
    round3 = [w for w, _ in rec.sent[6:]]
    assert not torch.equal(round3[0]["body.0.weight"], round3[1]["body.0.weight"]), "per-client mixes"
    assert not torch.equal(round3[0]["body.1.weight"], round3[1]["body.1.weight"])
