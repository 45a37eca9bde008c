"""kNN-Per: the datastore holds the client's training features under the received model, and the
personalised prediction interpolates the model with a kNN vote over it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import PERSONAL_STATE, EvalContext, features
from algorithms.knnper import _STORE, KNNPer
from algorithms.testing import dummy_federation, dummy_info, initial_state, run_engine
from fl_core.data import normalise
from fl_core.models import create_model, load_state

torch.set_num_threads(1)


def _ctx(state, kind="personal"):
    return EvalContext(0, dummy_info(), kind, {}, state, lambda s: None)


def test_knn_vote_recovers_memorised_labels_the_model_gets_wrong() -> None:
    torch.manual_seed(0)
    model = create_model("tiny_cnn", 3).eval()
    x = torch.randn(12, 3, 16, 16)
    with torch.no_grad():
        feats, logits = features(model, x)
    y = (logits.argmax(1) + 1) % 3  # labels the model never predicts
    state = {_STORE: {"feats": feats, "labels": y}}
    with torch.no_grad():
        knn_only = KNNPer(k=1, lam=1.0).evaluation_logits(_ctx(state), model, x)
        mixed = KNNPer(k=1, lam=0.5).evaluation_logits(_ctx(state), model, x)
        glob = KNNPer(k=1, lam=1.0).evaluation_logits(_ctx(state, "global"), model, x)
    assert torch.equal(knn_only.argmax(1), y)
    assert torch.equal(glob, logits)
    expected = 0.5 * F.one_hot(y, 3).float() + 0.5 * F.softmax(logits, 1)
    assert torch.allclose(mixed.exp(), expected, atol=1e-5)


def test_datastore_is_built_from_the_received_model_on_every_training_example() -> None:
    data = dummy_federation()
    engine, result = run_engine(KNNPer(), data, rounds=1)
    model = create_model("tiny_cnn", 3)
    load_state(model, initial_state(data))
    model.eval()
    for cid, client in enumerate(data.clients):
        state = engine.client_states[cid]
        store = state[_STORE]
        with torch.no_grad():
            feats, _ = features(model, normalise(client.train.x))
        assert torch.equal(store["labels"], client.train.y)
        assert torch.allclose(store["feats"], feats, atol=1e-5)
        assert all(torch.equal(state[PERSONAL_STATE][k], v) for k, v in initial_state(data).items())
    assert result.history[-1]["personal"] != result.history[-1]["global"]
