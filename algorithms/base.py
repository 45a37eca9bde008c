"""The one interface every FL algorithm implements: :class:`FLAlgorithm` and its hooks.

The engine (``fl_core.engine``) owns every loop: rounds, sampled clients, local epochs, batches.
An algorithm only answers questions the engine asks at fixed points, and every hook has the FedAvg
answer by default, so a variant overrides the one or two hooks its paper changes (Flower's Strategy
spirit). Client and server halves live in one class.

Round life cycle, as the engine calls it::

    init_server(global_state, server)                        # once, before round 1
    for each round:
        for each sampled client:
            payload = configure_client(client_id, server)    # server -> client extras
            ctx = ClientContext(..., payload, state=<client's persistent dict>)
            begin_client(ctx)
            for phase in local_phases(ctx):                  # which model, which keys train, epochs
                for each batch:
                    loss = local_loss(ctx, model, x, y, logits, feats, ce_loss)
                    loss.backward(); after_backward(ctx, model); optimizer.step()
            upload = end_client(ctx, model)                  # client -> server extras
        new_global = aggregate(global_state, updates, server)
    personalised_state(global_state, client_state, local_state)   # what "personalised" evaluates

Estimator contract (scikit-learn): ``__init__`` only stores keyword hyper-parameters with the paper's
defaults; ``get_params``/``set_params`` are derived from its signature; state that lives across
rounds is kept in attributes ending in ``_`` (server side) or in ``ctx.state`` (client side), and
both are checkpointed by the engine. Hooks do no I/O.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from algorithms.aggregation import StateDict, weighted_mean
from fl_core.models import ModelInfo

__all__ = [
    "PERSONAL_STATE",
    "ClientContext",
    "ClientUpdate",
    "FLAlgorithm",
    "Phase",
    "ServerContext",
]

#: Key in a client's persistent state under which the engine keeps a personal model (``Phase(model=
#: "personal")``); :meth:`FLAlgorithm.personalised_state` returns it when present.
PERSONAL_STATE = "personal_model"


@dataclass(frozen=True)
class Phase:
    """One stage of local training.

    Attributes:
        epochs: passes over the client's training split.
        trainable: state-dict keys whose parameters get gradients; ``None`` means all parameters.
            FedRep trains ``info.head_keys`` first, then ``info.body_keys``.
        model: ``"global"`` trains the copy that is sent back to the server; ``"personal"`` trains
            the client's own model kept in ``ctx.state[PERSONAL_STATE]`` (Ditto), started from the
            received global weights the first time.
        lr: learning rate for this phase; ``None`` uses the run's ``lr``.
    """

    epochs: int
    trainable: frozenset[str] | None = None
    model: Literal["global", "personal"] = "global"
    lr: float | None = None


@dataclass
class ClientContext:
    """What a client knows during its local round. Built by the engine, read and written by hooks.

    Attributes:
        client_id: index of the client in the federation.
        round: current round, starting at 1.
        info: names of the model's state-dict keys by role.
        global_state: the weights received this round (on the training device). Do not modify.
        payload: extras the server sent with the weights (:meth:`FLAlgorithm.configure_client`).
        state: this client's persistent dict, kept across rounds and checkpointed (tensors, numbers,
            lists, dicts). Algorithms store SCAFFOLD's ``c_i``, FedDyn's correction, MOON's previous
            model here.
        num_samples: size of the client's training split.
        label_counts: training examples per class (length ``info.num_classes``), for FedLC.
        local_epochs: the run's local epochs per round.
        lr: the run's client learning rate.
        make_model: builds a frozen (eval-mode, no-grad) model on the training device from a state
            dict, e.g. to compute the global or previous model's features (MOON).
        phase: the phase being trained (set by the engine).
        steps: optimizer steps taken so far this round (set by the engine; SCAFFOLD needs K).
        scratch: per-round temporaries, never checkpointed (e.g. a cached frozen model).
    """

    client_id: int
    round: int
    info: ModelInfo
    global_state: StateDict
    payload: dict[str, Any]
    state: dict[str, Any]
    num_samples: int
    label_counts: Tensor
    local_epochs: int
    lr: float
    make_model: Callable[[StateDict], nn.Module]
    phase: Phase | None = None
    steps: int = 0
    scratch: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientUpdate:
    """What a client sends back: shared weights, its weight in the average, and extras."""

    client_id: int
    state: StateDict
    num_samples: int
    payload: dict[str, Any] = field(default_factory=dict)
    train_loss: float = float("nan")


@dataclass(frozen=True)
class ServerContext:
    """What the server knows in a round.

    Attributes:
        round: current round (0 in :meth:`FLAlgorithm.init_server`).
        info: names of the model's state-dict keys by role.
        num_clients: clients in the federation (SCAFFOLD and FedDyn scale by it).
        sampled: ids of the clients sampled this round.
        client_sizes: training-split size of every client, by id.
    """

    round: int
    info: ModelInfo
    num_clients: int
    sampled: tuple[int, ...] = ()
    client_sizes: tuple[int, ...] = ()


class FLAlgorithm:
    """Base class with FedAvg behaviour in every hook.

    Class attributes a subclass may set:
        name: the registry name (set by ``@register``).
        primary_model: which model the run's early stopping and headline metric use:
            ``"global"`` or ``"personal"`` (FedBN, FedPer, FedRep, Ditto, Local-only).
    """

    name: ClassVar[str] = "base"
    primary_model: ClassVar[Literal["global", "personal"]] = "global"

    # ----------------------------------------------------------------- parameters (sklearn-style)
    @classmethod
    def _param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as passed to ``__init__`` (names from its signature)."""
        return {n: getattr(self, n) for n in self._param_names()}

    def set_params(self, **params: Any) -> FLAlgorithm:
        """Set hyper-parameters by name; unknown names raise with the valid list."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}; valid: {valid} "
                                 "(see get_params().keys())")
            setattr(self, k, v)
        return self

    def validate(self) -> None:
        """Check hyper-parameters before a run; raise ``ValueError`` saying what to change."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- state (checkpointed)
    def get_state(self) -> dict[str, Any]:
        """Server-side state: every attribute ending in ``_`` (deep-copied)."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned (used on resume)."""
        for k, v in state.items():
            setattr(self, k, copy.deepcopy(v))

    # ----------------------------------------------------------------- which keys are shared
    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        """State-dict keys that never leave the client (FedBN: BatchNorm; FedPer: head; local: all)."""
        return frozenset()

    # ----------------------------------------------------------------- server side
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        """Create server state (``*_`` attributes) from the initial global weights."""

    def configure_client(self, client_id: int, server: ServerContext) -> dict[str, Any]:
        """Extras sent with the weights to one client this round (e.g. SCAFFOLD's global ``c``)."""
        return {}

    def aggregate(
        self, global_state: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        """New global weights from the clients' updates: the sample-weighted mean (FedAvg).

        Keys absent from the updates (local keys) keep their value from ``global_state``.
        """
        if not updates or not updates[0].state:
            return dict(global_state)
        mean = weighted_mean([u.state for u in updates], [u.num_samples for u in updates])
        return {**global_state, **mean}

    @staticmethod
    def shared_params(updates: Sequence[ClientUpdate], server: ServerContext) -> list[str]:
        """Keys of the trainable parameters the clients sent: what a server-side optimiser steps.

        Buffers (BatchNorm statistics) and local keys are left out: buffers stay plainly averaged
        and local keys never reach the server.
        """
        if not updates:
            return []
        params = set(server.info.param_keys)
        return [k for k in updates[0].state if k in params]

    # ----------------------------------------------------------------- client side
    def begin_client(self, ctx: ClientContext) -> None:
        """Called before local training (initialise ``ctx.state``, cache frozen models)."""

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        """The local training plan: by default all parameters for ``ctx.local_epochs`` epochs."""
        return [Phase(epochs=ctx.local_epochs)]

    def local_loss(
        self, ctx: ClientContext, model: nn.Module, x: Tensor, y: Tensor, logits: Tensor,
        feats: Tensor, loss: Tensor,
    ) -> Tensor:
        """The loss to minimise on one batch; ``loss`` is the mean cross-entropy of ``logits``.

        Override to add terms (FedProx proximal term, MOON contrastive term on ``feats``) or to
        replace it (FedLC: cross-entropy on calibrated logits).
        """
        return loss

    def after_backward(self, ctx: ClientContext, model: nn.Module) -> None:
        """Called after ``backward()`` and before ``optimizer.step()`` (SCAFFOLD corrects grads)."""

    def end_client(self, ctx: ClientContext, model: nn.Module) -> dict[str, Any]:
        """Called after local training with the trained global copy; returns extras to upload."""
        return {}

    # ----------------------------------------------------------------- evaluation
    def personalised_state(
        self, global_state: StateDict, client_state: dict[str, Any], local_state: StateDict
    ) -> StateDict:
        """Weights a client evaluates as its personalised model.

        Default: its personal model if it keeps one (Ditto), else the global weights with the
        client's own local keys (FedBN's BatchNorm, FedPer's head) merged in.
        """
        if PERSONAL_STATE in client_state:
            return client_state[PERSONAL_STATE]
        return {**global_state, **local_state}
