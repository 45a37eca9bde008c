"""FedGen: a server-side feature generator the client heads agree on, sent back as a regulariser."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from algorithms.api import ClientUpdate, Message, ServerContext
from algorithms.fedgen import COUNTS, GENERATOR, FeatureGenerator
from algorithms.registry import get_algorithm
from algorithms.testing import RecordingTransport, dummy_federation, dummy_info, dummy_state, run_engine
from fl_core.models import create_model, load_state

torch.set_num_threads(1)


def _make_model(state):
    m = create_model("tiny_cnn", 3)
    load_state(m, state)
    return m.train()


def _ensemble_accuracy(algo, heads, share, n=300):
    gen = FeatureGenerator(3, 64, algo.noise_dim, algo.hidden_dim)
    gen.load_state_dict(algo.generator_)
    g = torch.Generator().manual_seed(5)
    y = torch.randint(3, (n,), generator=g)
    with torch.no_grad():
        z = gen(y, torch.randn(n, algo.noise_dim, generator=g))
        logits = sum(share[k, y][:, None] * F.linear(z, w, b) for k, (w, b) in enumerate(heads))
    return float((logits.argmax(1) == y).float().mean())


def test_generator_learns_features_the_label_weighted_ensemble_of_heads_assigns_to_each_label() -> None:
    info = dummy_info()
    g0 = dummy_state(0)
    algo = get_algorithm("fedgen", generator_steps=150, generator_lr=1e-2)
    server = ServerContext(1, info, 2, (0, 1), (10, 10), make_model=_make_model)
    algo.init_server(g0, server)
    heads, ups = [], []
    counts = [torch.tensor([6.0, 4.0, 0.0]), torch.tensor([0.0, 4.0, 6.0])]   # client 1 alone holds class 2
    for k in range(2):
        s = dummy_state(10 + k)
        heads.append((s["head.weight"], s["head.bias"]))
        ups.append(ClientUpdate(k, s, 10, Message(arrays={COUNTS: {COUNTS: counts[k].double()}})))
    share = torch.stack(counts) / torch.stack(counts).sum(0)
    before = _ensemble_accuracy(algo, heads, share)
    assert not algo.configure_client(0, server).arrays, "an untrained generator is not sent"
    algo.aggregate(g0, ups, server)
    after = _ensemble_accuracy(algo, heads, share)
    assert after >= 0.95 and after > before + 0.3, (before, after)
    sent = algo.configure_client(0, server).arrays[GENERATOR]
    assert all(torch.equal(sent[k], algo.generator_[k]) for k in sent)


def test_clients_upload_class_counts_and_train_with_the_generator_from_round_two() -> None:
    data = dummy_federation()
    rec = RecordingTransport()
    e_gen, _ = run_engine(get_algorithm("fedgen", generator_steps=5), data, rounds=2, transport=rec)
    e_avg, _ = run_engine(get_algorithm("fedavg"), data, rounds=2)
    assert [GENERATOR in m.arrays for _, m in rec.sent] == [False, False, True, True]
    for u, c in zip(rec.received, list(data.clients) * 2):
        assert torch.equal(u.message.arrays[COUNTS][COUNTS], c.label_counts(3).double())
    k = e_gen.info.param_keys[0]
    # round 1 is FedAvg; round 2 is regularised by the generator, so the global weights part ways
    assert not torch.allclose(e_gen.global_state[k], e_avg.global_state[k])


def test_local_loss_adds_the_decayed_teacher_and_latent_terms() -> None:
    from algorithms.api import Batch, ClientContext

    algo = get_algorithm("fedgen", alpha=10.0, beta=10.0, coef_decay=0.5)
    info = dummy_info()
    model = create_model("tiny_cnn", 3)
    gen = FeatureGenerator(3, 64, algo.noise_dim, algo.hidden_dim)
    msg = Message(arrays={GENERATOR: {k: v.detach().clone() for k, v in gen.state_dict().items()}})
    ctx = ClientContext(client_id=0, round=3, info=info, global_state={}, message=msg, state={}, num_samples=8,
                        label_counts=torch.tensor([4, 4, 0]), local_epochs=1, lr=0.1, make_model=lambda s: model)
    algo.begin_client(ctx)
    x, y = torch.randn(8, 3, 16, 16), torch.tensor([0, 1] * 4)
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    logits = model.get_classifier()(feats)
    batch = Batch(x, y, logits, feats, F.cross_entropy(logits, y))
    torch.manual_seed(0)
    loss = algo.local_loss(ctx, model, batch)
    torch.manual_seed(0)
    z = ctx.scratch[GENERATOR](y, torch.randn(8, algo.noise_dim))
    latent = F.kl_div(F.log_softmax(logits, 1), F.softmax(model.head(z), 1), reduction="batchmean")
    y_gen = torch.tensor([0, 1])[torch.randint(2, (32,))]
    teacher = F.cross_entropy(model.head(ctx.scratch[GENERATOR](y_gen, torch.randn(32, algo.noise_dim))), y_gen)
    assert torch.allclose(loss, batch.loss + 0.25 * (10 * 32 / 8 * teacher + 10 * latent), atol=1e-5)
    assert set(y_gen.tolist()) <= {0, 1}, "generated labels come from the classes the client holds"
