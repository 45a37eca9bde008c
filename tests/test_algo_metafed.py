"""MetaFed: the ring hands each site its predecessor's model; weak sites adopt it, good ones distil it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import PERSONAL_STATE, Batch, ClientContext, Message
from algorithms.metafed import FLAG, KIND, OWN, MetaFed, personal_strength
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, dummy_state, run_engine
from fl_core.models import create_model, load_state

torch.set_num_threads(1)


def test_personalisation_strength() -> None:
    assert personal_strength(0.8, 0.4, 1.0, 0.5) == 0.0, "common model worse and weak: no distillation"
    assert personal_strength(0.7, 0.9, 1.0, 0.5) == 1.0  # 10^min(1, 1.0) / 10
    assert abs(personal_strength(0.7, 0.72, 2.0, 0.5) - 2 * 10 ** 0.1 / 10) < 1e-12


def test_the_ring_passes_each_sites_model_to_the_next() -> None:
    rec = RecordingTransport()
    run_engine(MetaFed(), dummy_federation(num_clients=3), rounds=2, transport=rec)
    assert len(rec.sent) == 2 * (3 + 3), "a ring stage per site, then a personalisation stage for all"
    kinds = [m.config[KIND] for _, m in rec.sent]
    assert kinds == (["accumulate"] * 3 + ["personalise"] * 3) * 2
    up = rec.received
    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)
    assert same(rec.sent[1][0], up[0].weights) and same(rec.sent[2][0], up[1].weights)
    assert all(same(rec.sent[3 + c][0], up[2].weights) for c in range(3)), "personalise from the ring's model"
    assert same(rec.sent[6][0], up[2].weights), "round 2 starts from the last site of round 1"
    assert same(up[0].weights, rec.states[0][OWN]), "a site hands on its own model"


def _ctx(state: dict) -> ClientContext:
    return ClientContext(client_id=0, round=2, info=dummy_info(), global_state=dummy_state(1),
                         message=Message(config={KIND: "accumulate"}), state=state, num_samples=4,
                         label_counts=torch.ones(3), local_epochs=1, lr=0.1, make_model=_frozen)


def _frozen(state):
    m = create_model("tiny_cnn", 3)
    load_state(m, state)
    return m.eval()


def test_weak_site_adopts_the_received_model_good_site_distils_it() -> None:
    own = dummy_state(2)
    weak = _ctx({OWN: own, FLAG: False, PERSONAL_STATE: own})
    MetaFed().begin_client(weak)
    assert PERSONAL_STATE not in weak.state and weak.scratch["lam"] == 0.0, "trains the received weights"
    good = _ctx({OWN: own, FLAG: True})
    MetaFed(lam=0.5).begin_client(good)
    assert good.state[PERSONAL_STATE] is own and good.scratch["lam"] == 0.5
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    student = _frozen(own)
    feats = student.forward_head(student.forward_features(x), pre_logits=True)
    teacher = good.scratch["teacher"]
    t_feats = teacher.forward_head(teacher.forward_features(x), pre_logits=True)
    loss = MetaFed(lam=0.5).local_loss(good, student, Batch(x, y, student(x), feats, torch.tensor(1.0)))
    assert torch.isclose(loss, 1.0 + 0.5 * F.mse_loss(feats, t_feats))
