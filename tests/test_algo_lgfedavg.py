"""LG-FedAvg: every client keeps its own representation; only the classifier head is averaged."""

from __future__ import annotations

import torch

from algorithms.aggregation import weighted_mean
from algorithms.registry import get_algorithm
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, initial_state, run_engine

torch.set_num_threads(1)


def test_local_keys_are_everything_but_the_head() -> None:
    info = dummy_info()
    local = get_algorithm("lgfedavg").local_keys(info)
    assert local == frozenset(info.state_keys) - frozenset(info.head_keys)
    assert set(info.bn_keys) <= local


def test_only_the_head_is_uploaded_and_averaged_and_each_client_keeps_its_body() -> None:
    data = dummy_federation(num_clients=3)
    rec = RecordingTransport()
    engine, result = run_engine(get_algorithm("lgfedavg"), data, rounds=2, transport=rec)
    info = engine.info
    head, body = list(info.head_keys), [k for k in info.state_keys if k not in info.head_keys]
    assert all(list(u.weights) == head for u in rec.received), "uploads carry the head only"
    round2 = rec.received[3:]
    expected = weighted_mean([u.weights for u in round2], [u.num_samples for u in round2])
    for k in head:
        assert torch.allclose(engine.global_state[k], expected[k], atol=1e-6)
    g0 = initial_state(data)
    k = info.param_keys[0]
    assert torch.equal(engine.global_state[k], g0[k]), "the server's body is never averaged or trained"
    bodies = [engine.local_states[c][k] for c in range(3)]
    assert not torch.equal(bodies[0], bodies[1]) and not torch.equal(bodies[0], g0[k])
    assert set(engine.local_states[0]) == set(body)
    assert result.history[-1]["personal"] != result.history[-1]["global"]
