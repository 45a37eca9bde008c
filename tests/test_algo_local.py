"""Local-only: nothing is averaged; each client's model is what it would be training alone."""

from __future__ import annotations

import torch

from algorithms.registry import get_algorithm
from algorithms.testing import dummy_federation, initial_state, run_engine
from fl_core.data import FederatedData
from tests.tensor_asserts import assert_same_tensors


def test_local_only_never_averages():
    data = dummy_federation(num_clients=2)
    start = initial_state(data)
    engine, _ = run_engine(get_algorithm("local"), data, rounds=2)
    assert_same_tensors(engine.global_state, start, what="global state after local-only rounds")
    k = engine.info.param_keys[0]
    assert not torch.equal(engine.local_states[0][k], engine.local_states[1][k])


def test_a_client_in_a_federation_trains_as_if_alone():
    data = dummy_federation(num_clients=2)
    alone = FederatedData(data.clients[:1], data.classes)
    fed, _ = run_engine(get_algorithm("local"), data, rounds=2)
    solo, _ = run_engine(get_algorithm("local"), alone, rounds=2)
    assert_same_tensors(fed.local_states[0], solo.local_states[0], what="client 0 in a federation vs alone")
