"""CCVR: class-wise feature statistics from the clients, a classifier retrained on virtual features."""

from __future__ import annotations

import torch

from algorithms.api import features
from algorithms.ccvr import STATS, class_moments, sample_gaussian
from algorithms.registry import get_algorithm
from algorithms.testing import RecordingTransport, dummy_federation, run_engine
from fl_core.data import normalise

torch.set_num_threads(1)


def test_pooled_sums_give_each_class_mean_and_covariance_of_all_clients_features() -> None:
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(7, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    labels = [torch.tensor([0, 0, 0, 1, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 1, 1, 0])]
    count = sum(torch.bincount(y, minlength=2).double() for y in labels)
    total = sum(torch.zeros(2, 4, dtype=torch.float64).index_add_(0, y, f) for f, y in zip(feats, labels))
    outer = sum(torch.zeros(2, 4, 4, dtype=torch.float64).index_add_(0, y, f[:, :, None] * f[:, None, :])
                for f, y in zip(feats, labels))
    mean, cov = class_moments(count, total, outer)
    allf, ally = torch.cat(feats), torch.cat(labels)
    for c in (0, 1):
        assert torch.allclose(mean[c], allf[ally == c].mean(0))
        assert torch.allclose(cov[c], torch.cov(allf[ally == c].T))


def test_virtual_features_follow_the_class_gaussian_even_when_singular() -> None:
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    a = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    cov = a.T @ a                                                   # rank 2
    x = sample_gaussian(mean, cov, 20000, torch.Generator().manual_seed(1))
    assert torch.allclose(x.mean(0), mean, atol=0.05)
    assert torch.allclose(torch.cov(x.T), cov, atol=0.05)


def test_a_round_is_fedavg_plus_a_calibrated_classifier_from_the_global_models_features() -> None:
    data = dummy_federation()
    rec = RecordingTransport()
    e_ccvr, _ = run_engine(get_algorithm("ccvr"), data, rounds=1, transport=rec)
    e_avg, _ = run_engine(get_algorithm("fedavg"), data, rounds=1)
    info = e_ccvr.info
    for k in info.body_keys:                  # stage 0 is FedAvg, stage 1 trains nothing
        assert torch.equal(e_ccvr.global_state[k], e_avg.global_state[k]), k
    assert not torch.equal(e_ccvr.global_state["head.weight"], e_avg.global_state["head.weight"]), \
        "the classifier was not recalibrated"
    # what a client shares in stage 1: its features' class-wise sums on the aggregated (FedAvg) model
    model = e_avg.workspace.frozen(e_avg.global_state)
    uploads = [u.message.arrays[STATS] for u in rec.received if STATS in u.message.arrays]
    assert len(uploads) == 2 and all(STATS not in u.message.arrays for u in rec.received[:2])
    for c, up in zip(data.clients, uploads):
        f, _ = features(model, normalise(c.train.x))
        f = f.double()
        assert torch.equal(up["count"], torch.bincount(c.train.y, minlength=3).double())
        for k in range(3):
            assert torch.allclose(up["sum"][k], f[c.train.y == k].sum(0), atol=1e-4)
    # the shipped catalog entry says what leaves a client
    from algorithms.catalog import get_entry

    assert get_entry("ccvr").shares == ("statistics",)
