"""pFedLA: each client starts from a layer-wise mix of all clients' models, and the hypernetwork
learns to weight, per layer, the clients whose layers match what the client trained."""

from __future__ import annotations

import torch

from algorithms.api import ClientUpdate, ServerContext
from algorithms.pfedla import PFedLA
from algorithms.testing import dummy_federation, dummy_info, dummy_state, run_engine

torch.set_num_threads(1)


def _setup():
    info = dummy_info()
    g, a, b = dummy_state(0), dummy_state(1), dummy_state(2)
    server = ServerContext(1, info, 2, (0, 1), (10, 10))
    algo = PFedLA()
    algo.init_server(g, server)
    algo.client_models_ = [a, b]
    return info, g, a, b, server, algo


def test_first_start_is_the_mean_of_all_clients_models_layer_by_layer() -> None:
    info, g, a, b, server, algo = _setup()
    w = algo.client_weights(0, g, server)
    for k in info.param_keys:
        assert torch.allclose(w[k], (a[k] + b[k]) / 2, atol=1e-6), k


def test_hypernetwork_learns_to_weight_the_client_whose_layers_it_trained_towards() -> None:
    _, g, a, b, server, algo = _setup()
    algo.aggregate(g, [ClientUpdate(0, {k: v.clone() for k, v in a.items()}, 10)], server)
    alpha = algo.layer_weights(0)
    differ = [layer for layer in alpha if any(not torch.equal(a[k], b[k]) for k in a if k.startswith(layer + "."))]
    assert len(differ) >= 4  # the convolutions and the head (fresh BatchNorms are alike in both)
    assert all(float(alpha[layer][0]) > 0.5 for layer in differ), "layers lean towards client 0's model"
    assert all(torch.equal(algo.client_models_[0][k], a[k]) for k in a), "the server keeps the latest upload"
    before = (a["head.weight"] + b["head.weight"]) / 2
    after = algo.client_weights(0, g, server)["head.weight"]
    assert float((after - a["head.weight"]).norm()) < float((before - a["head.weight"]).norm())


def test_a_run_trains_and_keeps_one_model_per_client_on_the_server() -> None:
    engine, result = run_engine(PFedLA(), dummy_federation(), rounds=2)
    models = engine.algo.client_models_
    assert len(models) == 2 and not torch.equal(models[0]["head.weight"], models[1]["head.weight"])
    assert result.history[-1]["personal"] != result.history[-1]["global"]
