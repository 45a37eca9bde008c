"""Floco: the classifier is a simplex of endpoints (centre in evaluation, random points in training);
at round tau every client gets its own point of the simplex from its projected update."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from algorithms.api import PERSONAL_STATE
from algorithms.floco import Floco, SimplexHead, client_points, project_onto_simplex
from algorithms.testing import dummy_federation, run_engine
from fl_core.models import create_model

torch.set_num_threads(1)


def test_simplex_head_uses_the_centre_in_evaluation_and_random_points_in_training() -> None:
    head = SimplexHead(4, 3, endpoints=3)
    x = torch.randn(5, 4)
    head.eval()
    expected = F.linear(x, head.endpoints.mean(dim=0), head.bias)
    assert torch.allclose(head(x), expected, atol=1e-6)
    head.train()
    torch.manual_seed(0)
    a, b = head.alphas(), head.alphas()
    assert not torch.equal(a, b) and torch.allclose(a.sum(), torch.tensor(1.0)) and float(a.min()) >= 0
    head.center.copy_(torch.tensor([0.6, 0.2, 0.2]))
    head.radius.fill_(0.1)
    for _ in range(20):
        assert float((head.alphas() - head.center).abs().sum()) <= 0.1 + 1e-6, "a point of the client's L1 ball"
    model = Floco(endpoints=3).build_model(create_model("tiny_cnn", 3))
    assert isinstance(model.get_classifier(), SimplexHead) and "head.endpoints" in model.state_dict()


def test_simplex_projection_by_hand() -> None:
    out = project_onto_simplex(np.array([[0.5, 0.5, 0.5], [2.0, 0.0, 0.0], [0.6, 0.4, -1.0]]))
    assert np.allclose(out, [[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0], [0.6, 0.4, 0.0]])
    points = client_points(np.array([[1.0, 0.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]), 3)
    assert np.allclose(points.sum(axis=1), 1.0) and (points >= 0).all()
    assert len({tuple(np.round(p, 6)) for p in points}) == 3, "clients with different updates get different points"


def test_after_tau_each_client_trains_and_evaluates_at_its_own_point() -> None:
    engine, result = run_engine(Floco(endpoints=3, tau=1), dummy_federation(num_clients=3), rounds=2)
    points = engine.algo.points_
    assert sorted(points) == ["0", "1", "2"]
    for cid, state in engine.client_states.items():
        own = state[PERSONAL_STATE]
        assert torch.allclose(own["head.center"], points[str(cid)]) and abs(float(own["head.radius"]) - 0.1) < 1e-6
    assert torch.allclose(engine.global_state["head.center"], torch.full((3,), 1 / 3))
    assert result.history[-1]["personal"] != result.history[-1]["global"]
