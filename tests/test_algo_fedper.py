"""FedPer: the body is averaged, the head never leaves its client."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from algorithms.aggregation import StateDict, weighted_mean
from algorithms.api import ClientContext, ClientUpdate, Message, ServerContext
from algorithms.fedper import FedPer
from algorithms.testing import dummy_federation, dummy_info, run_engine

torch.set_num_threads(1)


def test_local_keys_are_the_head() -> None:
    info = dummy_info()
    assert FedPer().local_keys(info) == frozenset(info.head_keys) and info.head_keys


def test_head_never_averaged_body_averaged() -> None:
    rec: dict = {"received": {}, "trained": {}, "updates": [], "globals": []}

    class Spy(FedPer):
        def begin_client(self, ctx: ClientContext) -> None:
            rec["received"][(ctx.round, ctx.client_id)] = {k: ctx.global_state[k].clone() for k in ctx.info.head_keys}

        def end_client(self, ctx: ClientContext, model: torch.nn.Module) -> Message:
            sd = model.state_dict()
            rec["trained"][(ctx.round, ctx.client_id)] = {k: sd[k].clone() for k in ctx.info.head_keys}
            return Message()

        def aggregate(self, global_state: StateDict, updates: Sequence[ClientUpdate],
                      server: ServerContext) -> StateDict:
            out = super().aggregate(global_state, updates, server)
            rec["updates"].append([dict(u.weights) for u in updates])
            rec["globals"].append((dict(global_state), out, [u.num_samples for u in updates]))
            return out

    Spy.name = "fedper"
    engine, _ = run_engine(Spy(), dummy_federation(num_clients=3), rounds=2)
    info = engine.info
    head, body = info.head_keys, [k for k in info.state_keys if k not in info.head_keys]
    initial_head = rec["received"][(1, 0)]
    assert len(rec["updates"]) == 2 and body, "two rounds of uploads, of a non-empty body"
    for r, ups in enumerate(rec["updates"]):
        assert len(ups) == 3 and all(set(u) == set(body) for u in ups), "each of the 3 clients uploads the body only"
        before, after, sizes = rec["globals"][r]
        mean = weighted_mean(ups, sizes)
        for k in body:
            assert torch.allclose(after[k].float(), mean[k].float(), atol=1e-6), f"body key {k} is not the mean"
        for k in head:
            assert torch.equal(after[k], before[k]) and torch.equal(after[k], initial_head[k]), \
                "the global head never changes"
    for cid in range(3):
        own = engine.local_states[cid]
        assert set(own) == set(head)
        assert not torch.equal(own[head[0]], initial_head[head[0]]), "each client trains its own head"
    assert not torch.equal(engine.local_states[0][head[0]], engine.local_states[1][head[0]])
    # round 2 starts from the client's own head, not the global one
    for cid in range(3):
        for k in head:
            assert torch.equal(rec["received"][(2, cid)][k], rec["trained"][(1, cid)][k])
    pers = engine.algo.personalised_state(engine.global_state, engine.client_states[0], engine.local_states[0])
    assert torch.equal(pers[head[0]], engine.local_states[0][head[0]])
    assert torch.equal(pers[body[0]], engine.global_state[body[0]])
