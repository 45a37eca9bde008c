"""The wire format: exact round trips, and clear refusals of anything that is not names, arrays, scalars."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from algorithms.api import ClientContext, FLAlgorithm, Message
from algorithms.testing import dummy_federation, run_engine
from algorithms.wire import NotMessageShaped, pack, pack_state, unpack, unpack_state


def test_every_dtype_shape_and_scalar_comes_back_exactly() -> None:
    weights = {"conv.weight": torch.randn(4, 3, 3, 3), "bn.num_batches_tracked": torch.tensor(7)}
    arrays = {"c": {"a": torch.randn(2, dtype=torch.float64), "mask": torch.tensor([True, False]),
                    "counts": torch.arange(5, dtype=torch.int32), "half": torch.ones(3, dtype=torch.float16)},
              "empty": {}}
    config = {"stage": 2, "tau": 0.5, "name": "x", "flag": True, "loss": float("nan")}
    w, m, head = unpack(pack(weights, Message(arrays, config), {"round": 3}))
    assert list(w) == list(weights) and all(torch.equal(w[k], weights[k]) for k in weights)
    assert list(m.arrays) == ["c", "empty"] and m.arrays["empty"] == {}
    for k, v in arrays["c"].items():
        assert m.arrays["c"][k].dtype == v.dtype and torch.equal(m.arrays["c"][k], v)
    assert {k: v for k, v in m.config.items() if k != "loss"} == {"stage": 2, "tau": 0.5, "name": "x", "flag": True}
    assert math.isnan(m.config["loss"]) and head == {"round": 3}


def test_client_state_round_trip_keeps_key_order() -> None:
    state = {"z": {"w": torch.ones(2)}, "a": 3, "m": {"x": torch.zeros(1)}, "b": "text"}
    back = unpack_state(pack_state(state))
    assert list(back) == list(state) and back["a"] == 3 and back["b"] == "text"
    assert torch.equal(back["z"]["w"], state["z"]["w"])


@pytest.mark.parametrize(("message", "hint"), [
    (Message(config={"ids": [1, 2]}), "config['ids'] is list"),
    (Message(arrays={"c": {"w": [1.0]}}), "c['w'] is list"),
    (Message(arrays={"c": torch.ones(2)}), "'c' must be a dict of named tensors"),
    (Message(arrays={"c": {"w": torch.ones(2, dtype=torch.bfloat16)}}), "dtype torch.bfloat16"),
])
def test_what_cannot_cross_is_refused_naming_the_key(message: Message, hint: str) -> None:
    with pytest.raises(NotMessageShaped, match=hint.replace("[", r"\[").replace("]", r"\]")):
        pack({}, message)


class KeepsAnObject(FLAlgorithm):
    """A mistake the contract must catch: a Python object in the client's state."""

    name = "test_keeps_an_object"

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.state["helper"] = nn.Linear(1, 1)


class SendsAList(FLAlgorithm):
    """A mistake the contract must catch: a list in the config sent to clients."""

    name = "test_sends_a_list"

    def configure_client(self, client_id: int, server) -> Message:
        return Message(config={"peers": [0, 1]})


@pytest.mark.parametrize("cls", [KeepsAnObject, SendsAList])
def test_a_non_message_shaped_algorithm_fails_in_memory_too(cls) -> None:
    """The direct (in-memory) transport refuses what Flower could not carry, so the mistake shows up at once."""
    with pytest.raises(TypeError, match="helper|peers"):
        run_engine(cls(), dummy_federation(), rounds=1)
