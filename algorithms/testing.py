"""Generic checks every registered algorithm must pass (scikit-learn's ``estimator_checks`` spirit).

Each ``check_*(name, algo)`` raises ``AssertionError`` on failure. :func:`all_checks` yields them;
``tests/test_algorithms_common.py`` runs them over ``all_algorithms()`` with a table of fast
settings and expected failures. Helpers build an in-memory federation of random tensors, so
checks need no image folders.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from algorithms.aggregation import StateDict
from algorithms.api import ClientUpdate, FLAlgorithm, Message, ServerContext
from algorithms.registry import all_algorithms
from algorithms.wire import pack, pack_state, unpack, unpack_state
from fl_core.config import RunConfig
from fl_core.data import ClientData, FederatedData, Split
from fl_core.models import ModelInfo, clone_state, create_model, model_info

__all__ = [
    "RecordingTransport",
    "all_checks",
    "dummy_federation",
    "dummy_info",
    "dummy_state",
    "initial_state",
    "run_engine",
]

Check = Callable[[str, FLAlgorithm], None]


def dummy_federation(num_clients: int = 2, per_class: int = 8, num_classes: int = 3, size: int = 16,
                     seed: int = 0) -> FederatedData:
    """Random images whose mean brightness depends on the class (so a model can learn something)."""
    g = torch.Generator().manual_seed(seed)
    clients = []
    for c in range(num_clients):
        def split(n: int) -> Split:
            y = torch.arange(num_classes).repeat_interleave(n)
            base = (y.float() * 200 / max(num_classes - 1, 1) + 20).view(-1, 1, 1, 1)
            x = (base + 25 * torch.randn(len(y), 3, size, size, generator=g)).clamp(0, 255).to(torch.uint8)
            return Split(x, y)

        clients.append(ClientData(f"client{c}", split(per_class), split(2), split(2)))
    return FederatedData(tuple(clients), tuple(f"class{k}" for k in range(num_classes)))


def dummy_info(num_classes: int = 3) -> ModelInfo:
    """The tiny CNN's key roles."""
    return model_info(create_model("tiny_cnn", num_classes), num_classes)


def dummy_state(seed: int, num_classes: int = 3) -> StateDict:
    """A tiny CNN state dict with seeded random weights."""
    torch.manual_seed(seed)
    return clone_state(create_model("tiny_cnn", num_classes).state_dict())


def initial_state(data: FederatedData, seed: int = 0, model: str = "tiny_cnn") -> StateDict:
    """The global weights an engine run with this seed starts from (before round 1)."""
    from fl_core.training import derive_seed

    torch.manual_seed(derive_seed(seed, 0))
    return clone_state(create_model(model, data.num_classes).state_dict())


def run_engine(algo: FLAlgorithm, data: FederatedData, rounds: int = 1, seed: int = 0,
               transport: Any = "direct", **overrides: Any) -> tuple[Any, Any]:
    """Run the in-process engine on in-memory data in a throw-away folder; returns (engine, result).

    ``transport`` is ``"direct"``, ``"serialising"`` or a :class:`fl_core.transport.Transport`.
    """
    from fl_core.engine import Engine

    with tempfile.TemporaryDirectory() as tmp:
        dirs = []
        for c in data.clients:
            (Path(tmp) / c.name).mkdir()
            dirs.append(str(Path(tmp) / c.name))
        settings: dict[str, Any] = {
            "data_dirs": tuple(dirs), "algorithm": algo.name, "algorithm_params": algo.get_params(),
            "rounds": rounds, "batch_size": 8, "lr": 0.05, "seed": seed, "out_dir": str(Path(tmp) / "out"),
            "progress": False, "image_size": data.clients[0].train.x.shape[-1]}
        cfg = RunConfig(**{**settings, **overrides})
        engine = Engine(cfg, data, copy.deepcopy(algo), transport)
        return engine, engine.run(reports=False)


def _server(info: ModelInfo, n: int = 3) -> ServerContext:
    return ServerContext(1, info, n, tuple(range(n)), tuple([10] * n))


def _fresh(algo: FLAlgorithm, global_state: StateDict, info: ModelInfo) -> FLAlgorithm:
    a = copy.deepcopy(algo)
    a.init_server(global_state, _server(info, 0))
    return a


def _shared(state: StateDict, algo: FLAlgorithm, info: ModelInfo) -> StateDict:
    local = algo.local_keys(info)
    return {k: v for k, v in state.items() if k not in local}


def check_default_constructible(name: str, algo: FLAlgorithm) -> None:
    cls = all_algorithms()[name]
    inst = cls()
    inst.validate()
    assert inst.name == name, f"{cls.__name__}.name is {inst.name!r}, registered as {name!r}"


def check_get_params_roundtrip(name: str, algo: FLAlgorithm) -> None:
    params = algo.get_params()
    clone = type(algo)(**params)
    assert clone.get_params() == params, f"{name}: get_params does not round-trip through __init__"
    assert type(algo)().set_params(**params).get_params() == params
    assert not algo.get_state() or all(k.endswith("_") for k in algo.get_state())


def check_identical_clients(name: str, algo: FLAlgorithm) -> None:
    """If every client returns the same weights S, the new global weights are S."""
    info = dummy_info()
    g, s = dummy_state(0), dummy_state(1)
    a = _fresh(algo, g, info)
    shared = _shared(s, a, info)
    ups = [ClientUpdate(i, clone_state(shared), 10 + i) for i in range(3)]
    out = a.aggregate(g, ups, _server(info))
    for k, v in shared.items():
        assert torch.allclose(out[k].float(), v.float(), atol=1e-5), f"{name}: key {k} is not the clients' value"


def check_no_change_keeps_global(name: str, algo: FLAlgorithm) -> None:
    """If every client returns the global weights unchanged, the global weights stay."""
    info = dummy_info()
    g = dummy_state(0)
    a = _fresh(algo, g, info)
    ups = [ClientUpdate(i, clone_state(_shared(g, a, info)), 5 + i) for i in range(3)]
    out = a.aggregate(g, ups, _server(info))
    for k, v in g.items():
        assert torch.allclose(out[k].float(), v.float(), atol=1e-6), f"{name}: key {k} moved"


def check_aggregation_order_invariant(name: str, algo: FLAlgorithm) -> None:
    info = dummy_info()
    g = dummy_state(0)
    ups = [ClientUpdate(i, _shared(dummy_state(i + 1), algo, info), 5 + 3 * i) for i in range(3)]
    a1, a2 = _fresh(algo, g, info), _fresh(algo, g, info)
    out1 = a1.aggregate(g, ups, _server(info))
    out2 = a2.aggregate(g, list(reversed(ups)), _server(info))
    for k in out1:
        assert torch.allclose(out1[k].float(), out2[k].float(), atol=1e-6), f"{name}: {k} depends on order"


def check_state_dict_shapes_kept(name: str, algo: FLAlgorithm) -> None:
    engine, _ = run_engine(algo, dummy_federation(), rounds=1)
    ref = algo.build_model(create_model("tiny_cnn", 3)).state_dict()  # a wrapper's keys (FedSR, Floco) count
    states = [engine.global_state] + [
        algo.personalised_state(engine.global_state, engine.client_states[i], engine.local_states.get(i, {}))
        for i in range(len(engine.data.clients))]
    for st in states:
        assert list(st) == list(ref), f"{name}: state-dict keys changed"
        for k, v in st.items():
            assert v.shape == ref[k].shape and v.dtype == ref[k].dtype, f"{name}: {k} changed shape/dtype"


def check_same_seed_same_result(name: str, algo: FLAlgorithm) -> None:
    data = dummy_federation()
    e1, r1 = run_engine(algo, data, rounds=2, seed=3)
    e2, r2 = run_engine(algo, data, rounds=2, seed=3)
    for k in e1.global_state:
        assert torch.equal(e1.global_state[k], e2.global_state[k]), f"{name}: {k} differs between runs"
    assert r1.final == r2.final


def check_one_round(name: str, algo: FLAlgorithm) -> None:
    _, r = run_engine(algo, dummy_federation(), rounds=1)
    h = r.history[0]
    assert h["train_images"] > 0 and torch.isfinite(torch.tensor(h["train_loss"])), f"{name}: no training"
    assert 0.0 <= r.final["accuracy"] <= 1.0


class RecordingTransport:
    """The direct transport, keeping a copy of everything that crosses (for the round-trip check)."""

    name = "recording"

    def __init__(self) -> None:
        from fl_core.transport import DirectTransport

        self._direct = DirectTransport()
        self.sent: list[tuple[StateDict, Message]] = []
        self.received: list[ClientUpdate] = []
        self.states: list[dict[str, Any]] = []

    def client_algorithm(self, algorithm: FLAlgorithm) -> FLAlgorithm:
        return algorithm

    def fit(self, client: Any, rnd: int, stage: int, weights: StateDict, message: Message) -> Any:
        self.sent.append((clone_state(weights), copy.deepcopy(message)))
        reply = self._direct.fit(client, rnd, stage, weights, message)
        self.received.append(copy.deepcopy(reply.update))
        self.states.append(copy.deepcopy(client.state))
        return reply

    def evaluate(self, client: Any, weights: StateDict, personal: bool, calibrate: bool) -> Message:
        return self._direct.evaluate(client, weights, personal, calibrate)


def _same_arrays(a: StateDict, b: StateDict, what: str) -> None:
    assert list(a) == list(b), f"{what}: keys {list(a)} came back as {list(b)}"
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, f"{what}: {k} changed dtype or shape"
        assert torch.equal(a[k].cpu(), b[k].cpu()), f"{what}: {k} changed value"


def _same_message(a: Message, b: Message, what: str) -> None:
    assert list(a.arrays) == list(b.arrays), f"{what}: array groups {list(a.arrays)} came back as {list(b.arrays)}"
    for g in a.arrays:
        _same_arrays(a.arrays[g], b.arrays[g], f"{what} group {g!r}")
    assert a.config == b.config, f"{what}: config {a.config} came back as {b.config}"


def check_exchange_round_trip(name: str, algo: FLAlgorithm) -> None:
    """Everything exchanged (weights, extras both ways, client state) survives bytes and back unchanged."""
    rec = RecordingTransport()
    run_engine(algo, dummy_federation(), rounds=2, transport=rec)
    assert rec.sent and rec.received, f"{name}: nothing was exchanged"
    for weights, message in rec.sent:
        w, m, _ = unpack(pack(weights, message))
        _same_arrays(weights, w, f"{name}: weights sent")
        _same_message(message, m, f"{name}: configure_client message")
    for u in rec.received:
        w, m, _ = unpack(pack(u.weights, u.message))
        _same_arrays(u.weights, w, f"{name}: weights uploaded")
        _same_message(u.message, m, f"{name}: end_client message")
    for state in rec.states:
        back = unpack_state(pack_state(state))
        assert list(back) == list(state), f"{name}: client state keys changed in a round trip"
        for k, v in state.items():
            if isinstance(v, dict):
                _same_arrays(v, back[k], f"{name}: client state {k!r}")
            else:
                assert back[k] == v, f"{name}: client state {k!r} changed in a round trip"


def check_client_hooks_on_fresh_instance(name: str, algo: FLAlgorithm) -> None:
    """A client whose instance never saw ``init_server`` (another process, built by name) trains a round."""
    from fl_core.transport import SerialisingTransport

    engine, result = run_engine(algo, dummy_federation(), rounds=1, transport=SerialisingTransport())
    for client in engine.clients:
        assert client.algo is not engine.algo, f"{name}: a client shares the server's instance"
        assert not client.algo.get_state(), (f"{name}: the client's instance holds server state "
                                             f"{sorted(client.algo.get_state())}; keep client state in ctx.state")
    assert result.history[0]["train_images"] > 0, f"{name}: no client trained"


def check_serialising_transport_equals_direct(name: str, algo: FLAlgorithm) -> None:
    """Two rounds through bytes, with fresh client instances, give exactly the direct run's weights and metrics."""
    data = dummy_federation()
    e_direct, r_direct = run_engine(algo, data, rounds=2, seed=1)
    e_bytes, r_bytes = run_engine(algo, data, rounds=2, seed=1, transport="serialising")
    _same_arrays(e_direct.global_state, e_bytes.global_state, f"{name}: global weights (serialising vs direct)")
    for cid in range(len(data.clients)):
        direct = algo.personalised_state(e_direct.global_state, e_direct.client_states[cid],
                                         e_direct.local_states.get(cid, {}))
        serial = algo.personalised_state(e_bytes.global_state, e_bytes.client_states[cid],
                                         e_bytes.local_states.get(cid, {}))
        _same_arrays(direct, serial, f"{name}: client {cid}'s personalised weights (serialising vs direct)")
    for h1, h2 in zip(r_direct.history, r_bytes.history):
        assert h1["global"] == h2["global"] and h1["personal"] == h2["personal"], \
            f"{name}: round {h1['round']} metrics differ between the serialising and the direct transport"


def all_checks() -> Iterator[Check]:
    """Every generic check, cheapest first."""
    yield check_default_constructible
    yield check_get_params_roundtrip
    yield check_identical_clients
    yield check_no_change_keeps_global
    yield check_aggregation_order_invariant
    yield check_state_dict_shapes_kept
    yield check_one_round
    yield check_same_seed_same_result
    yield check_exchange_round_trip
    yield check_client_hooks_on_fresh_instance
    yield check_serialising_transport_equals_direct
