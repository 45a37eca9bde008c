"""FedBN: BatchNorm weights and statistics never leave the client."""

from __future__ import annotations

import torch

from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, initial_state, run_engine


def test_batchnorm_stays_local_and_the_rest_is_shared():
    data = dummy_federation(num_clients=2)
    algo = get_algorithm("fedbn")
    start = initial_state(data)
    engine, result = run_engine(algo, data, rounds=2)
    bn = set(engine.info.bn_keys)
    assert bn and engine.local_keys == frozenset(bn)
    for k in bn:  # the server never saw BatchNorm: it keeps its initial values
        assert torch.equal(engine.global_state[k], start[k]), k
    mean_key = next(k for k in bn if k.endswith("running_mean"))
    a, b = engine.local_states[0][mean_key], engine.local_states[1][mean_key]
    assert not torch.equal(a, b)  # each client has its own statistics
    pers = algo.personalised_state(engine.global_state, engine.client_states[0], engine.local_states[0])
    assert torch.equal(pers[mean_key], a)
    conv = next(k for k in engine.info.param_keys if k not in bn)
    assert torch.equal(pers[conv], engine.global_state[conv]) and not torch.equal(pers[conv], start[conv])
    assert result.primary_model == "personal"
