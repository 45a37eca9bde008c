"""ADCOL: clients upload their training representations, the server trains a client-identity
discriminator on them, and local training adds mu * KL(uniform || D(features)); no weights averaged."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.adcol import ADCOL, DISC, FEATURES, make_discriminator, uniform_kl
from algorithms.api import Batch, ClientContext, Message
from algorithms.catalog import get_entry
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, run_engine

torch.set_num_threads(1)


def test_indistinguishability_term_is_zero_for_a_uniform_discriminator_and_pulls_features() -> None:
    disc = make_discriminator(4, 3)
    for p in disc.parameters():
        torch.nn.init.zeros_(p)
    with torch.no_grad():
        assert float(uniform_kl(disc(torch.randn(5, 4)))) == 0.0
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    by_hand = sum(1 / 3 * (torch.log(torch.tensor(1 / 3)) - F.log_softmax(logits, 1)[0, j]) for j in range(3))
    assert torch.allclose(uniform_kl(logits), by_hand)
    info = dummy_info()
    biased = make_discriminator(64, 2)
    ctx = ClientContext(0, 1, info, {}, Message(arrays={DISC: biased.state_dict()}), {}, 4, torch.ones(3), 1, 0.1,
                        lambda s: None)
    algo = ADCOL(mu=0.5)
    algo.begin_client(ctx)
    feats = torch.randn(4, 64, requires_grad=True)
    logits, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    ce = F.cross_entropy(logits, y)
    loss = algo.local_loss(ctx, None, Batch(torch.zeros(4), y, logits, feats, ce))
    assert torch.allclose(loss, ce + 0.5 * uniform_kl(biased(feats)))
    loss.backward()
    assert float(feats.grad.abs().sum()) > 0, "the term trains the representation"


def test_server_learns_to_tell_clients_apart_from_their_uploaded_features() -> None:
    rec = RecordingTransport()
    engine, result = run_engine(ADCOL(), dummy_federation(), rounds=2, transport=rec)
    up = rec.received[0]
    assert up.weights == {}, "no weights leave a client"
    data = dummy_federation()
    assert up.message.arrays[FEATURES]["feats"].shape == (len(data.clients[0].train), 64)
    feats = torch.cat([u.message.arrays[FEATURES]["feats"] for u in rec.received[2:]])
    ids = torch.cat([torch.full((len(u.message.arrays[FEATURES]["feats"]),), u.client_id) for u in rec.received[2:]])
    torch.manual_seed(0)
    initial = make_discriminator(64, 2)  # the server's discriminator before any training
    with torch.no_grad():
        trained_loss = F.cross_entropy(engine.algo.disc_(feats), ids)
        initial_loss = F.cross_entropy(initial(feats), ids)
    assert float(trained_loss) < float(initial_loss)
    assert result.history[-1]["personal"] != result.history[-1]["global"]


def test_catalog_marks_the_features_it_shares() -> None:
    entry = get_entry("adcol")
    assert entry.shares == ("features",) and "features" in entry.key_idea and "features" in entry.choose_when
