"""CFL: clients with opposite label maps end in different clusters; a cluster splits only when the
mean update is small while a client's update is large."""

from __future__ import annotations

import torch

from algorithms.api import ClientUpdate, ServerContext
from algorithms.cfl import CFL
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine
from fl_core.data import ClientData, FederatedData, Split

torch.set_num_threads(1)


def _flipped(data: FederatedData, which: set[int]) -> FederatedData:
    """The same images; clients in ``which`` use the reversed label map (class k is called K-1-k)."""
    k = data.num_classes - 1

    def flip(s: Split) -> Split:
        return Split(s.x, k - s.y)

    clients = [ClientData(c.name, flip(c.train), flip(c.val), flip(c.test)) if i in which else c
               for i, c in enumerate(data.clients)]
    return FederatedData(tuple(clients), data.classes)


def test_opposite_label_maps_end_in_two_clusters() -> None:
    data = _flipped(dummy_federation(num_clients=4, seed=1), {1, 3})
    # clusters of >= 3 may split: round 1 splits the four, the pairs of round 2 cannot split again
    algo = CFL(eps1=1e9, eps2=0.0, warmup_rounds=0, min_split_size=3)
    engine, result = run_engine(algo, data, rounds=2)
    clusters = sorted(sorted(m) for m in engine.algo.clusters_)
    assert clusters == [[0, 2], [1, 3]], clusters
    a, b = engine.algo.models_[engine.algo.cluster_of(0)], engine.algo.models_[engine.algo.cluster_of(1)]
    k = engine.info.head_keys[0]
    assert not torch.equal(a[k], b[k]), "after the split each cluster trains its own model"
    assert result.history[-1]["personal"] != result.history[-1]["global"]


def test_no_split_while_the_mean_update_is_large_or_before_warmup() -> None:
    data = _flipped(dummy_federation(num_clients=4, seed=1), {1, 3})
    engine, _ = run_engine(CFL(eps1=0.0, eps2=0.0, warmup_rounds=0, min_split_size=2), data, rounds=1)
    assert engine.algo.clusters_ == [[0, 1, 2, 3]]
    engine, _ = run_engine(CFL(eps1=1e9, eps2=0.0, warmup_rounds=5, min_split_size=2), data, rounds=1)
    assert engine.algo.clusters_ == [[0, 1, 2, 3]]


def test_hand_built_updates_split_by_direction_and_average_within_cluster() -> None:
    info = dummy_info()
    g = dummy_state(0)
    d = {k: torch.randn_like(v) if k in info.param_keys else torch.zeros_like(v) for k, v in g.items()}
    norm = sum(float(v.pow(2).sum()) for v in d.values()) ** 0.5
    d = {k: v / norm for k, v in d.items()}  # a unit update direction
    sign = [1.0, -1.0, 1.1, -0.9]
    ups = [ClientUpdate(i, {k: (g[k] + s * d[k]).to(g[k].dtype) for k in g}, 10) for i, s in enumerate(sign)]
    server = ServerContext(1, info, 4, (0, 1, 2, 3), (10, 10, 10, 10))
    algo = CFL(eps1=0.4, eps2=0.5, warmup_rounds=0, min_split_size=2)
    algo.init_server(g, server)
    algo.aggregate(g, ups, server)
    # mean update norm 0.05 < eps1, each update norm ~1 > eps2: split into the two directions
    assert sorted(sorted(m) for m in algo.clusters_) == [[0, 2], [1, 3]]
    k = info.param_keys[0]
    c0 = algo.models_[algo.cluster_of(0)]
    assert torch.allclose(c0[k], g[k] + 1.05 * d[k], atol=1e-5), "a cluster model is its members' mean"
    assert torch.equal(algo.client_weights(1, g, server)[k], algo.models_[algo.cluster_of(1)][k])
