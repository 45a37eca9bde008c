"""What each algorithm's clients upload, read off the serialising transport's wire.

Every registered algorithm: no raw input image leaves a client; a method whose catalog ``shares`` is
empty uploads only weight-shaped arrays and small statistics; one that declares ``shares`` really
uploads something beyond weights (so the declaration, and this test, are not idle). The rules are
defined in ``algorithms/upload_checks.py``.
"""

from __future__ import annotations

import pytest
import torch
from test_algorithms_common import FAST_SETTINGS

from algorithms.api import Message
from algorithms.catalog import get_entry
from algorithms.fedavg import FedAvg
from algorithms.registry import all_algorithms, get_algorithm
from algorithms.testing import dummy_federation, run_engine
from algorithms.upload_checks import UploadRecorder, image_copies, undeclared_arrays, uploads

ROUNDS = 2


def _record(algo):
    data = dummy_federation()
    rec = UploadRecorder()
    engine, _ = run_engine(algo, data, rounds=ROUNDS, transport=rec)
    shapes = {k: v.shape for k, v in engine.global_state.items()}
    for cid in range(len(data.clients)):  # personal layers are weights too
        shapes.update({k: v.shape for k, v in engine.local_states.get(cid, {}).items()})
    return data, uploads(rec.replies), shapes


@pytest.mark.parametrize("name", sorted(all_algorithms()))
def test_uploads_hold_no_raw_image_and_match_the_catalog(name):
    entry = get_entry(name)
    data, items, shapes = _record(get_algorithm(name, **FAST_SETTINGS.get(name, {})))
    copies = image_copies(items, data)
    assert not copies, f"{name} uploads raw input images: {copies}"
    odd = undeclared_arrays(items, shapes, data.num_classes)
    if entry.shares:
        beyond = [i for i in items if shapes.get(i.key) != i.value.shape]
        assert beyond, (f"{name} declares shares={entry.shares} but uploaded only weight-shaped arrays in "
                     f"{ROUNDS} rounds; add hyper-parameters that make it share early to FAST_SETTINGS in "
                     "tests/test_algorithms_common.py, or empty its catalog 'shares'")
    else:
        assert not odd, (f"{name} uploads {odd} beyond weights and small statistics; declare what they are in "
                         "its catalog entry's 'shares' (e.g. 'statistics', 'features')")


class _Leaky(FedAvg):
    """FedAvg that also uploads its last training batch, scaled and optionally noised (test only)."""

    name = "fedavg"

    def __init__(self, noise: float = 0.0) -> None:
        self.noise = noise

    def local_loss(self, ctx, model, batch):
        ctx.scratch["x"] = batch.x.detach().clone()
        return super().local_loss(ctx, model, batch)

    def end_client(self, ctx, model):
        x = ctx.scratch["x"]
        return Message(arrays={"leak": {"x": 0.5 * x.permute(0, 2, 3, 1) + self.noise * torch.randn_like(
            x.permute(0, 2, 3, 1))}})


def test_a_client_uploading_its_batch_is_caught_even_channel_last_and_rescaled():
    data, items, shapes = _record(_Leaky())
    copies = image_copies(items, data)
    assert copies and all(c.startswith("leak/x") for c in copies)
    assert all(o.startswith("leak/x") for o in undeclared_arrays(items, shapes, data.num_classes))


def test_noised_features_are_not_a_copy_but_still_need_a_declaration():
    data, items, shapes = _record(_Leaky(noise=0.3))
    assert not image_copies(items, data)
    assert undeclared_arrays(items, shapes, data.num_classes), "noised per-example content went unnoticed"


def test_fedavg_uploads_weights_only():
    data, items, shapes = _record(get_algorithm("fedavg"))
    assert {i.group for i in items} == {"weights"}
    assert not undeclared_arrays(items, shapes, data.num_classes) and not image_copies(items, data)
