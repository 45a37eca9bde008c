"""FedProto: server prototypes are the sample-weighted class means; training pulls features to them."""

from __future__ import annotations

import torch

from algorithms.api import Batch, ClientContext, ClientUpdate, Message, Phase, ServerContext
from algorithms.fedproto import GLOBAL, PROTOTYPES, FedProto
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, dummy_state, run_engine

torch.set_num_threads(1)


def _update(cid: int, mean: list[list[float]], count: list[float]) -> ClientUpdate:
    return ClientUpdate(cid, {}, int(sum(count)),
                        Message(arrays={PROTOTYPES: {"mean": torch.tensor(mean), "count": torch.tensor(count)}}))


def test_server_prototypes_are_the_sample_weighted_class_means() -> None:
    info = dummy_info()
    algo = FedProto()
    g = dummy_state(0)
    algo.init_server(g, ServerContext(0, info, 2))
    ups = [_update(0, [[1.0, 0.0], [0.0, 0.0], [3.0, 3.0]], [2, 0, 1]),
           _update(1, [[4.0, 2.0], [1.0, 1.0], [0.0, 0.0]], [1, 3, 0])]
    out = algo.aggregate(g, ups, ServerContext(1, info, 2, (0, 1), (3, 4)))
    assert all(torch.equal(out[k], v) for k, v in g.items()), "no weights are averaged"
    p = algo.prototypes_
    assert torch.allclose(p["mean"], torch.tensor([[2.0, 2 / 3], [1.0, 1.0], [3.0, 3.0]]))  # (2*1+1*4)/3, ...
    assert torch.equal(p["count"], torch.tensor([3.0, 3.0, 1.0]))
    assert algo.configure_client(0, ServerContext(2, info, 2)).arrays[GLOBAL] is p


def test_loss_adds_lambda_times_the_distance_to_the_class_prototype() -> None:
    protos = {"mean": torch.tensor([[1.0, 1.0], [0.0, 0.0], [5.0, 5.0]]), "count": torch.tensor([1.0, 1.0, 0.0])}
    ctx = ClientContext(client_id=0, round=2, info=dummy_info(), global_state={}, message=Message(arrays={GLOBAL: protos}),
                        state={}, num_samples=3, label_counts=torch.ones(3), local_epochs=1, lr=0.1,
                        make_model=lambda s: None, phase=Phase(epochs=1))
    feats = torch.tensor([[3.0, 1.0], [0.0, 2.0], [9.0, 9.0]])
    ce = torch.tensor(0.5)
    b = Batch(torch.zeros(3), torch.tensor([0, 1, 2]), torch.zeros(3, 3), feats, ce)
    # class 2 has no global prototype: only the first two rows count; mse = (4 + 0 + 0 + 4) / 4 = 2
    assert torch.isclose(FedProto(lam=0.5).local_loss(ctx, None, b), torch.tensor(0.5 + 0.5 * 2.0))


def test_a_run_exchanges_prototypes_and_never_weights() -> None:
    rec = RecordingTransport()
    run_engine(FedProto(), dummy_federation(), rounds=2, transport=rec)
    assert all(not u.weights for u in rec.received), "weights never leave a client"
    round1 = [u.message.arrays[PROTOTYPES] for u in rec.received[:2]]
    assert GLOBAL not in rec.sent[0][1].arrays
    sent = rec.sent[2][1].arrays[GLOBAL]
    want = sum(p["mean"] * p["count"][:, None] for p in round1) / sum(p["count"] for p in round1)[:, None]
    assert torch.allclose(sent["mean"], want, atol=1e-6)
    assert torch.equal(sent["count"], torch.tensor([16.0, 16.0, 16.0]))  # 8 per class per client
