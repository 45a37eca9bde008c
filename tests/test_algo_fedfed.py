"""FedFed: distil performance-sensitive features, upload them (noised) with labels, train on the pool."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import Batch, ClientContext, Message
from algorithms.catalog import get_entry
from algorithms.fedfed import DISTILLER, SHARED, Distiller
from algorithms.registry import get_algorithm
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, run_engine
from fl_core.data import normalise
from fl_core.models import create_model

torch.set_num_threads(1)


def test_distillation_loss_reconstructs_and_classifies_the_sensitive_part() -> None:
    algo = get_algorithm("fedfed", noise_std=0.0, reconstruction_weight=2.0, sensitive_weight=3.0)
    model = algo.build_model(create_model("tiny_cnn", 3))
    ctx = ClientContext(client_id=0, round=1, info=dummy_info(), global_state={}, message=Message(), state={},
                        num_samples=4, label_counts=torch.ones(3), local_epochs=1, lr=0.1, make_model=lambda s: model)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    logits = model(x)
    batch = Batch(x, y, logits, logits, F.cross_entropy(logits, y))
    robust = getattr(model, DISTILLER)(x)
    expected = batch.loss + 2.0 * F.mse_loss(robust, x) + 3.0 * F.cross_entropy(model(x - robust), y)
    assert torch.allclose(algo.local_loss(ctx, model, batch), expected, atol=1e-6)


def test_clients_upload_sensitive_features_after_distillation_and_then_train_on_the_pool() -> None:
    data = dummy_federation()
    rec = RecordingTransport()
    e_ff, _ = run_engine(get_algorithm("fedfed", distill_rounds=1, noise_std=0.0), data, rounds=2, transport=rec)
    round1, round2 = rec.received[:2], rec.received[2:]
    for u, c in zip(round1, data.clients):
        up = u.message.arrays[SHARED]
        assert torch.equal(up["y"], c.train.y) and up["x"].shape == c.train.x.shape
        d = Distiller(3, 4)
        d.load_state_dict({k[len(DISTILLER) + 1:]: v for k, v in u.weights.items() if k.startswith(DISTILLER + ".")})
        x = normalise(c.train.x)
        with torch.no_grad():
            assert torch.allclose(up["x"], x - d(x), atol=1e-5), "the upload is x - distiller(x)"
        assert not torch.allclose(up["x"], x, atol=1e-2), "raw images are not what is shared"
    assert all(SHARED not in u.message.arrays for u in round2), "features are uploaded once"
    assert all(SHARED not in m.arrays for _, m in rec.sent[:2])
    pool = torch.cat([u.message.arrays[SHARED]["x"] for u in round1])
    for _, m in rec.sent[2:]:
        assert torch.equal(m.arrays[SHARED]["x"], pool), "every client gets the pooled features of all sites"
    e_off, _ = run_engine(get_algorithm("fedfed", distill_rounds=1, noise_std=0.0, shared_weight=0.0), data, rounds=2)
    k = e_ff.info.param_keys[0]
    assert not torch.allclose(e_ff.global_state[k], e_off.global_state[k]), "the shared features changed nothing"


def test_noise_protects_the_upload_and_the_catalog_says_features_leave_the_site() -> None:
    data = dummy_federation()
    rec = RecordingTransport()
    run_engine(get_algorithm("fedfed", distill_rounds=1, noise_std=0.5), data, rounds=1, transport=rec)
    u, c = rec.received[0], data.clients[0]
    d = Distiller(3, 4)
    d.load_state_dict({k[len(DISTILLER) + 1:]: v for k, v in u.weights.items() if k.startswith(DISTILLER + ".")})
    with torch.no_grad():
        residual = u.message.arrays[SHARED]["x"] - (normalise(c.train.x) - d(normalise(c.train.x)))
    assert abs(float(residual.std()) - 0.5) < 0.05
    entry = get_entry("fedfed")
    assert entry.shares == ("features",) and "UPLOAD" in entry.key_idea
