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
from algorithms.base import ClientUpdate, FLAlgorithm, ServerContext
from algorithms.registry import all_algorithms
from fl_core.config import RunConfig
from fl_core.data import ClientData, FederatedData, Split
from fl_core.models import ModelInfo, clone_state, create_model, model_info

__all__ = [
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
        return engine, engine.run()


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
    ref = dummy_state(0)
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
