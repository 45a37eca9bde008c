"""Each hook the contract adds for the coming methods, proven by a small test-only algorithm.

None of these classes is registered: each exercises one hook the way a named method will (CCVR's
pass over the data, FedGen's server-side training, pFedSim's per-client start, APFL's evaluation
forward, FedRoD's extra head, MetaFed's sequential stages), and each must also pass the generic
message-shape checks, since a hook that only works in memory would break under Flower.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from algorithms.api import (
    Batch,
    ClientContext,
    ClientUpdate,
    EvalContext,
    FLAlgorithm,
    Message,
    ModelInfo,
    Phase,
    ServerContext,
    StateDict,
)
from algorithms.testing import (
    check_client_hooks_on_fresh_instance,
    check_exchange_round_trip,
    check_serialising_transport_equals_direct,
    dummy_federation,
    initial_state,
    run_engine,
)

torch.set_num_threads(1)
NUM_CLASSES = 3


class Prototypes(FLAlgorithm):
    """A pass over the data after training: per-class feature sums and counts, averaged on the server."""

    name = "test_prototypes"

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [*super().local_phases(ctx), Phase(epochs=1, kind="observe")]

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        assert not torch.is_grad_enabled() and not model.training
        s = ctx.scratch.setdefault("sum", torch.zeros(NUM_CLASSES, batch.feats.shape[1]))
        n = ctx.scratch.setdefault("count", torch.zeros(NUM_CLASSES))
        s.index_add_(0, batch.y, batch.feats)
        n.index_add_(0, batch.y, torch.ones(len(batch.y)))
        ctx.state["seen"] = ctx.state.get("seen", 0) + len(batch.y)

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        return Message(arrays={"prototypes": {"sum": ctx.scratch["sum"], "count": ctx.scratch["count"]}})

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        total = sum(u.message.arrays["prototypes"]["sum"] for u in updates)
        count = sum(u.message.arrays["prototypes"]["count"] for u in updates)
        self.prototypes_ = total / count[:, None]
        self.count_ = count
        return combined


class ShiftedStarts(FLAlgorithm):
    """Per-client starting weights: client k starts from the global weights plus k."""

    name = "test_shifted_starts"

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        return {k: v + client_id if v.is_floating_point() else v for k, v in global_state.items()}

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.state.setdefault("starts", {})[f"round{ctx.round}"] = ctx.global_state[ctx.info.param_keys[0]].clone()


class ServerTuned(FLAlgorithm):
    """A model trained on the server: one SGD step of the combined model on server-side inputs."""

    name = "test_server_tuned"

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        assert server.make_model is not None
        model = server.make_model(combined)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(server.round))
        model(x).pow(2).mean().backward()
        opt.step()
        return {k: v.detach().clone() for k, v in model.state_dict().items()}


class ExtraHead(FLAlgorithm):
    """A model wrapper (an extra, personal head) and an evaluation forward that uses it (FedRoD's shape)."""

    name = "test_extra_head"
    primary_model = "personal"

    def build_model(self, model: nn.Module) -> nn.Module:
        model.extra_head = nn.Linear(model.get_classifier().in_features, model.get_classifier().out_features)
        return model

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        return frozenset(k for k in info.state_keys if k.startswith("extra_head."))

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        return batch.loss + F.cross_entropy(batch.logits.detach() + model.extra_head(batch.feats.detach()), batch.y)

    def evaluation_logits(self, ctx: EvalContext, model: nn.Module, x: Tensor) -> Tensor:
        if ctx.model_kind == "global":
            return model(x)
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        return model.get_classifier()(feats) + model.extra_head(feats)


class Sequential(FLAlgorithm):
    """Sequential rounds: one client per stage, each starting from the previous stage's result."""

    name = "test_sequential"

    def stages(self, server: ServerContext) -> list[tuple[int, ...]]:
        return [(c,) for c in server.sampled]

    def begin_client(self, ctx: ClientContext) -> None:
        ctx.state["start"] = {"w": ctx.global_state[ctx.info.param_keys[0]].clone().view(-1)[:4]}
        ctx.state["stage"] = ctx.stage

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        self.after_stage_ = {**getattr(self, "after_stage_", {}), server.stage: combined}
        return combined


HOOKED = [Prototypes, ShiftedStarts, ServerTuned, ExtraHead, Sequential]


@pytest.mark.parametrize("cls", HOOKED, ids=lambda c: c.name)
@pytest.mark.parametrize("check", [check_exchange_round_trip, check_client_hooks_on_fresh_instance,
                                   check_serialising_transport_equals_direct], ids=lambda c: c.__name__)
def test_hooked_algorithm_is_message_shaped(cls, check) -> None:
    check(cls.name, cls())


def test_observe_pass_sees_every_example_once_and_changes_no_weight() -> None:
    data = dummy_federation()
    engine, _ = run_engine(Prototypes(), data, rounds=1)
    plain, _ = run_engine(FLAlgorithm(), data, rounds=1)
    for k, v in plain.global_state.items():  # eval mode, no grad: not even BatchNorm statistics move
        assert torch.equal(engine.global_state[k], v), k
    for c, client in zip(data.clients, engine.clients):
        assert client.state["seen"] == len(c.train)
    expected = sum(c.label_counts(NUM_CLASSES) for c in data.clients).float()
    assert torch.equal(engine.algo.count_, expected)
    assert engine.algo.prototypes_.shape == (NUM_CLASSES, 64) and torch.isfinite(engine.algo.prototypes_).all()


def test_each_client_starts_from_the_weights_the_server_chose_for_it() -> None:
    engine, _ = run_engine(ShiftedStarts(), dummy_federation(), rounds=2)
    r1 = [c.state["starts"]["round1"] for c in engine.clients]
    assert torch.allclose(r1[1], r1[0] + 1.0)
    assert "round2" in engine.clients[0].state["starts"]


def test_server_trains_a_model_of_its_own() -> None:
    data = dummy_federation()
    tuned, _ = run_engine(ServerTuned(), data, rounds=1)
    plain, _ = run_engine(FLAlgorithm(), data, rounds=1)
    k = tuned.info.param_keys[0]
    assert not torch.equal(tuned.global_state[k], plain.global_state[k]), "the server's step changed nothing"


def test_extra_head_is_a_personal_key_trained_on_clients_and_used_in_evaluation() -> None:
    engine, result = run_engine(ExtraHead(), dummy_federation(), rounds=2)
    extra = sorted(engine.local_keys)
    assert extra == ["extra_head.bias", "extra_head.weight"] and set(extra) <= set(engine.info.state_keys)
    w = "extra_head.weight"
    a, b = engine.local_states[0][w], engine.local_states[1][w]
    assert not torch.equal(a, b), "each client trains its own extra head"
    assert not torch.equal(a, engine.global_state[w]), "the server's copy is never trained or averaged"
    assert result.history[-1]["personal"] != result.history[-1]["global"], "personal evaluation uses the extra head"


def test_sequential_stages_start_each_client_from_the_previous_stage() -> None:
    engine, _ = run_engine(Sequential(), dummy_federation(num_clients=3), rounds=1)
    k = engine.info.param_keys[0]
    after = engine.algo.after_stage_
    assert sorted(after) == [0, 1, 2]
    for stage in (1, 2):
        start = engine.clients[stage].state["start"]["w"]
        assert torch.equal(start, after[stage - 1][k].view(-1)[:4]), f"client {stage} did not start from stage {stage - 1}"
    assert torch.equal(engine.global_state[k], after[2][k])
    assert [c.state["stage"] for c in engine.clients] == [0, 1, 2], "each client knows its stage"


class TwoPass(FLAlgorithm):
    """Two stages per round (FedIIR's shape): an observe-only pass whose statistics the server
    sends back with the training stage."""

    name = "test_two_pass"

    def stages(self, server: ServerContext) -> list[tuple[int, ...]]:
        return [server.sampled, server.sampled]

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        if server.stage == 0:
            return Message()
        return Message(arrays={"mean_feats": {"all": self.mean_feats_}})

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        return [Phase(epochs=1, kind="observe")] if ctx.stage == 0 else super().local_phases(ctx)

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        ctx.scratch["sum"] = ctx.scratch.get("sum", 0) + batch.feats.sum(0)

    def begin_client(self, ctx: ClientContext) -> None:
        if ctx.stage == 1:
            ctx.state["received"] = {"all": ctx.message.arrays["mean_feats"]["all"].clone()}

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        if ctx.stage == 0:
            return Message(arrays={"feats": {"sum": ctx.scratch["sum"]}}, config={"n": ctx.num_samples})
        return Message()

    def server_update(self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
        if server.stage == 0:
            total = sum(u.message.arrays["feats"]["sum"] for u in updates)
            self.mean_feats_ = total / sum(int(u.message.config["n"]) for u in updates)
        return combined


def test_two_pass_round_observes_first_then_trains_with_the_pooled_statistics() -> None:
    data = dummy_federation()
    engine, result = run_engine(TwoPass(), data, rounds=1)
    plain, _ = run_engine(FLAlgorithm(), data, rounds=1)
    for c in engine.clients:
        assert torch.equal(c.state["received"]["all"], engine.algo.mean_feats_)
    k = engine.info.param_keys[0]
    assert not torch.equal(engine.global_state[k], initial_state(data)[k]), "the second stage trained"
    assert result.history[0]["train_images"] == plain.history[0]["train_images"], "the observe pass is not training"
    check_serialising_transport_equals_direct(TwoPass.name, TwoPass())
