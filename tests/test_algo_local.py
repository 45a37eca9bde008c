"""Local-only: nothing is averaged; each client's model is what it would be training alone."""

from __future__ import annotations

import torch

from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, initial_state, run_engine
from fl_core.data import FederatedData


def test_local_only_never_averages():
    data = dummy_federation(num_clients=2)
    start = initial_state(data)
    engine, _ = run_engine(get_algorithm("local"), data, rounds=2)
    assert all(torch.equal(engine.global_state[k], start[k]) for k in engine.global_state)
    k = engine.info.param_keys[0]
    assert not torch.equal(engine.local_states[0][k], engine.local_states[1][k])


def test_a_client_in_a_federation_trains_as_if_alone():
    data = dummy_federation(num_clients=2)
    alone = FederatedData(data.clients[:1], data.classes)
    fed, _ = run_engine(get_algorithm("local"), data, rounds=2)
    solo, _ = run_engine(get_algorithm("local"), alone, rounds=2)
    assert all(torch.equal(fed.local_states[0][k], solo.local_states[0][k]) for k in solo.local_states[0])
