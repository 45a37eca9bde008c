"""The algorithm contract: what crosses between server and clients, and the hooks an engine calls.

This module imports nothing of ``fl_core``: an engine (the in-process one in ``fl_core.engine``, or a
Flower ServerApp/ClientApp pair) depends on it, never the other way round. Engines take an
:class:`FLAlgorithm` *instance*; names are resolved by their callers through
``algorithms.registry.get_algorithm``.

Everything exchanged is message-shaped, so that it survives a trip to bytes and back
(``algorithms.wire``) and maps one to one onto Flower's ``RecordDict``:

* :class:`Message`: named groups of named arrays (``arrays["c"]["conv.weight"]``) plus scalar
  ``config`` (bool, int, float, str). Server -> client (:meth:`FLAlgorithm.configure_client`) and
  client -> server (:meth:`FLAlgorithm.end_client`) alike.
* Model weights travel beside the message: :meth:`FLAlgorithm.client_weights` (server -> client)
  and :attr:`ClientUpdate.weights` (client -> server).
* A client's persistent state ``ctx.state`` is a dict whose values are named arrays or scalars. It
  lives on the client, is checkpointed by the client, and is never seen by the server.

Round life cycle (every hook has the FedAvg answer by default)::

    model = build_model(model)                               # once, on server and every client
    init_server(global_state, server)                        # once, before round 1
    for each round, for each stage in stages(server):        # default: one stage = the sampled clients
        for each client in the stage:
            weights = client_weights(cid, global_state, server)    # per-client starting weights
            message = configure_client(cid, server)                # extras: arrays + config
            --- on the client ---
            begin_client(ctx)
            for phase in local_phases(ctx):                  # kind "train" or "observe"
                for each batch: loss = local_loss(ctx, model, batch); backward;
                                after_backward(ctx, model); optimizer step      (train)
                for each batch: observe(ctx, model, batch)  # no grad, eval mode  (observe)
                after_phase(ctx, model)
            reply = end_client(ctx, model)                   # extras to upload
            --- back on the server ---
        global_state = aggregate(global_state, updates, server)   # combine (mean) -> server_update
    evaluation on each client: personalised_state(...), evaluation_logits(ctx, model, x)

Estimator contract (scikit-learn): ``__init__`` only stores keyword hyper-parameters with the paper's
defaults; ``get_params``/``set_params`` and the catalog's hyper-parameters derive from its
signature; server state lives in attributes ending in ``_``; hooks do no I/O.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from algorithms.aggregation import StateDict, weighted_mean

__all__ = [
    "PERSONAL_STATE",
    "Arrays",
    "Batch",
    "ClientContext",
    "ClientUpdate",
    "EvalContext",
    "FLAlgorithm",
    "Message",
    "ModelInfo",
    "Phase",
    "Scalar",
    "ServerContext",
    "StateDict",
    "features",
]

#: A config value that crosses the wire (Flower's ConfigRecord scalars).
Scalar = bool | int | float | str
#: Named arrays (one Flower ArrayRecord): state-dict-like, flat, tensor values.
Arrays = dict[str, Tensor]

#: Key in a client's state under which the engine keeps a personal model (``Phase(model=
#: "personal")``); :meth:`FLAlgorithm.personalised_state` returns it when present.
PERSONAL_STATE = "personal_model"


@dataclass
class Message:
    """Extras exchanged besides the weights: named array groups and scalar config.

    Attributes:
        arrays: group name -> named arrays, e.g. ``{"c": {"conv.weight": tensor}}``.
        config: scalars (bool, int, float, str), e.g. ``{"stage": 1}``.
    """

    arrays: dict[str, Arrays] = field(default_factory=dict)
    config: dict[str, Scalar] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """What algorithms may know about the model: names of state-dict keys by role.

    Attributes:
        state_keys: all state-dict keys, in order.
        param_keys: keys of trainable parameters.
        buffer_keys: keys of buffers (BatchNorm running statistics, counters).
        body_keys: keys outside the classifier.
        head_keys: keys of the classifier (``get_classifier()``).
        bn_keys: keys of BatchNorm layers (weights, biases and running statistics).
        num_classes: size of the label space.
    """

    state_keys: tuple[str, ...]
    param_keys: tuple[str, ...]
    buffer_keys: tuple[str, ...]
    body_keys: tuple[str, ...]
    head_keys: tuple[str, ...]
    bn_keys: tuple[str, ...]
    num_classes: int


def features(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """One forward pass returning ``(features, logits)``; features are the classifier's input.

    Every model an engine builds follows timm's ``forward_features`` / ``forward_head`` /
    ``get_classifier`` protocol, and so must a model :meth:`FLAlgorithm.build_model` returns.
    """
    feats = model.forward_head(model.forward_features(x), pre_logits=True)
    return feats, model.get_classifier()(feats)


@dataclass(frozen=True)
class Phase:
    """One stage of local training, or a pass over the client's data.

    Attributes:
        epochs: passes over the client's training split.
        trainable: state-dict keys whose parameters get gradients; ``None`` means all parameters.
        model: ``"global"`` trains the copy that is sent back to the server; ``"personal"`` trains
            the client's own model kept in ``ctx.state[PERSONAL_STATE]`` (Ditto), started from the
            received weights the first time.
        lr: learning rate for this phase; ``None`` uses the run's ``lr``.
        kind: ``"train"`` (gradient steps with :meth:`FLAlgorithm.local_loss`) or ``"observe"``
            (eval mode, no gradients, in data order; :meth:`FLAlgorithm.observe` sees every batch:
            feature statistics, prototypes, Fisher traces after training).
        max_steps: stop a train phase after this many optimizer steps (``None``: all ``epochs``);
            Per-FedAvg's one-step adaptation is ``Phase(epochs=1, max_steps=1)``.
    """

    epochs: int
    trainable: frozenset[str] | None = None
    model: Literal["global", "personal"] = "global"
    lr: float | None = None
    kind: Literal["train", "observe"] = "train"
    max_steps: int | None = None


@dataclass
class Batch:
    """One mini-batch and the model's forward pass on it.

    Attributes:
        x: normalised images.
        y: labels.
        logits: the model's logits (with gradients in a train phase).
        feats: the classifier's input features (same pass).
        loss: mean cross-entropy of ``logits``.
        index: positions of the examples in the client's training split.
    """

    x: Tensor
    y: Tensor
    logits: Tensor
    feats: Tensor
    loss: Tensor
    index: Tensor | None = None


@dataclass
class ClientContext:
    """What a client knows during its local round. Built by the engine on the client's side.

    Attributes:
        client_id: index of the client in the federation.
        round: current round, starting at 1.
        info: names of the model's state-dict keys by role.
        global_state: the weights this client started from (server's weights with the client's
            local keys merged in), on the training device. Do not modify.
        message: the extras the server sent (:meth:`FLAlgorithm.configure_client`).
        state: this client's persistent state: values are named arrays (``dict[str, Tensor]``)
            or scalars. Kept on the client across rounds and checkpointed there.
        num_samples: size of the client's training split.
        label_counts: training examples per class (length ``info.num_classes``).
        local_epochs: the run's local epochs per round.
        lr: the run's client learning rate.
        make_model: builds a frozen (eval-mode, no-grad) model from a state dict.
        phase: the phase being run (set by the engine).
        steps: optimizer steps taken so far this round (set by the engine).
        scratch: per-round temporaries, never checkpointed (e.g. a cached frozen model).
        stage: index of the round's stage this training belongs to (:meth:`FLAlgorithm.stages`).
    """

    client_id: int
    round: int
    info: ModelInfo
    global_state: StateDict
    message: Message
    state: dict[str, Any]
    num_samples: int
    label_counts: Tensor
    local_epochs: int
    lr: float
    make_model: Callable[[StateDict], nn.Module]
    phase: Phase | None = None
    steps: int = 0
    scratch: dict[str, Any] = field(default_factory=dict)
    stage: int = 0


@dataclass
class EvalContext:
    """What a client knows when it evaluates a model on one of its splits.

    Attributes:
        client_id: index of the client.
        info: names of the model's state-dict keys by role.
        model_kind: ``"global"`` or ``"personal"``: which model is being evaluated.
        global_state: the server's current weights.
        state: the client's persistent state (read only).
        make_model: builds a frozen model from a state dict (e.g. a mixture's second model).
    """

    client_id: int
    info: ModelInfo
    model_kind: Literal["global", "personal"]
    global_state: StateDict
    state: dict[str, Any]
    make_model: Callable[[StateDict], nn.Module]


@dataclass
class ClientUpdate:
    """What a client sends back: its shared weights, its sample count, and extras."""

    client_id: int
    weights: StateDict
    num_samples: int
    message: Message = field(default_factory=Message)
    train_loss: float = float("nan")


@dataclass(frozen=True)
class ServerContext:
    """What the server knows in a round.

    Attributes:
        round: current round (0 in :meth:`FLAlgorithm.init_server`).
        info: names of the model's state-dict keys by role.
        num_clients: clients in the federation.
        sampled: ids of the clients sampled this round.
        client_sizes: training-split size of every client, by id.
        stage: index of the stage within the round (:meth:`FLAlgorithm.stages`).
        make_model: builds a trainable model from a state dict on the server's device, for methods
            that train models on the server (a generator's target, a hypernetwork's output);
            ``None`` where the engine offers none.
    """

    round: int
    info: ModelInfo
    num_clients: int
    sampled: tuple[int, ...] = ()
    client_sizes: tuple[int, ...] = ()
    stage: int = 0
    make_model: Callable[[StateDict], nn.Module] | None = None


class FLAlgorithm:
    """Base class with FedAvg behaviour in every hook.

    Class attributes a subclass may set:
        name: the registry name (set by ``@register``).
        primary_model: which model the run's early stopping and headline metric use:
            ``"global"`` or ``"personal"``.
    """

    name: ClassVar[str] = "base"
    primary_model: ClassVar[Literal["global", "personal"]] = "global"

    # ----------------------------------------------------------------- parameters (sklearn-style)
    @classmethod
    def _param_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        """Hyper-parameters with their defaults, read from ``__init__``'s signature (the catalog's)."""
        sig = inspect.signature(cls.__init__).parameters
        return {n: sig[n].default for n in cls._param_names() if sig[n].default is not inspect.Parameter.empty}

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as passed to ``__init__`` (names from its signature)."""
        return {n: getattr(self, n) for n in self._param_names()}

    def set_params(self, **params: Any) -> FLAlgorithm:
        """Set hyper-parameters by name; unknown names raise with the valid list."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                known = f"valid: {valid} (defaults {self.default_params()})" if valid else "it takes none"
                raise ValueError(f"{type(self).__name__} has no parameter {k!r}; {known}")
            setattr(self, k, v)
        return self

    def validate(self) -> None:
        """Check hyper-parameters before a run; raise ``ValueError`` saying what to change."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ----------------------------------------------------------------- server state (checkpointed)
    def get_state(self) -> dict[str, Any]:
        """Server-side state: every attribute ending in ``_`` (deep-copied)."""
        return {k: copy.deepcopy(v) for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned (used on resume)."""
        for k, v in state.items():
            setattr(self, k, copy.deepcopy(v))

    # ----------------------------------------------------------------- model
    def build_model(self, model: nn.Module) -> nn.Module:
        """The model every party trains: wrap ``model`` or add heads (default: unchanged).

        Called once on the server and once on every client with the same freshly built model;
        the result must keep the ``forward_features`` / ``forward_head`` / ``get_classifier``
        protocol (:func:`features`). Extra heads become ordinary state-dict keys.
        """
        return model

    def local_keys(self, info: ModelInfo) -> frozenset[str]:
        """State-dict keys that never leave the client (FedBN: BatchNorm; FedPer: head; local: all)."""
        return frozenset()

    # ----------------------------------------------------------------- server side
    def init_server(self, global_state: StateDict, server: ServerContext) -> None:
        """Create server state (``*_`` attributes) from the initial global weights."""

    def stages(self, server: ServerContext) -> list[tuple[int, ...]]:
        """Groups of clients trained one after another within a round; :meth:`aggregate` runs after
        each group. Default: one stage with every sampled client. Sequential methods return one
        client per stage; two-pass methods return the sampled clients twice (see ``server.stage``)."""
        return [server.sampled]

    def client_weights(self, client_id: int, global_state: StateDict, server: ServerContext) -> StateDict:
        """The weights one client starts from this round (default: the global weights).

        Methods that send each client its own starting point (cluster models, hypernetwork outputs,
        similarity-weighted mixtures) override this. The client merges its local keys in.
        """
        return global_state

    def configure_client(self, client_id: int, server: ServerContext) -> Message:
        """Extras sent with the weights to one client this round (e.g. SCAFFOLD's global ``c``)."""
        return Message()

    def aggregate(
        self, global_state: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        """New global weights: :meth:`combine` the updates, then :meth:`server_update`.

        Keys absent from the updates (local keys) keep their value from ``global_state``.
        """
        if not updates or not updates[0].weights:
            return dict(global_state)
        combined = {**global_state, **self.combine(updates, server)}
        return self.server_update(global_state, combined, updates, server)

    def client_weight(self, update: ClientUpdate, server: ServerContext) -> float:
        """A client's weight in the mean (default: its sample count)."""
        return float(update.num_samples)

    def combine(self, updates: Sequence[ClientUpdate], server: ServerContext) -> StateDict:
        """The clients' weights combined key by key (default: the :meth:`client_weight`-ed mean).

        Robust aggregation (median, trimmed mean) overrides this one hook.
        """
        return weighted_mean([u.weights for u in updates], [self.client_weight(u, server) for u in updates])

    def server_update(
        self, global_state: StateDict, combined: StateDict, updates: Sequence[ClientUpdate], server: ServerContext
    ) -> StateDict:
        """The server's step from the combined weights (default: adopt them). Server optimisers
        (momentum, Adam), drift corrections and models trained on the server go here; the
        updates' extras (``u.message``) are at hand."""
        return combined

    @staticmethod
    def shared_params(updates: Sequence[ClientUpdate], server: ServerContext) -> list[str]:
        """Keys of the trainable parameters the clients sent: what a server-side optimiser steps.

        Buffers (BatchNorm statistics) and local keys are left out.
        """
        if not updates:
            return []
        params = set(server.info.param_keys)
        return [k for k in updates[0].weights if k in params]

    # ----------------------------------------------------------------- client side
    def begin_client(self, ctx: ClientContext) -> None:
        """Called before local training (initialise ``ctx.state``, cache frozen models)."""

    def local_phases(self, ctx: ClientContext) -> list[Phase]:
        """The local plan: by default all parameters for ``ctx.local_epochs`` epochs."""
        return [Phase(epochs=ctx.local_epochs)]

    def local_loss(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> Tensor:
        """The loss to minimise on one batch (default: ``batch.loss``, the mean cross-entropy).

        Override to add terms (FedProx's proximal term, MOON's contrastive term on ``batch.feats``)
        or to replace it (FedLC: cross-entropy on calibrated logits).
        """
        return batch.loss

    def after_backward(self, ctx: ClientContext, model: nn.Module) -> None:
        """Called after ``backward()`` and before ``optimizer.step()`` (SCAFFOLD corrects grads)."""

    def observe(self, ctx: ClientContext, model: nn.Module, batch: Batch) -> None:
        """Called on every batch of an ``"observe"`` phase (no gradients): accumulate statistics
        in ``ctx.scratch`` or ``ctx.state`` and upload them from :meth:`end_client`."""

    def after_phase(self, ctx: ClientContext, model: nn.Module) -> None:
        """Called after each local phase with the model it ran on (default: nothing). A method may
        change that model's weights here, e.g. FedFomo replaces them by its first-order combination
        of the peers' models after an observe pass has scored them."""

    def end_client(self, ctx: ClientContext, model: nn.Module) -> Message:
        """Called after local training with the trained model; returns extras to upload."""
        return Message()

    # ----------------------------------------------------------------- evaluation (on the client)
    def adapt_phases(self, ctx: ClientContext) -> list[Phase]:
        """Training a client runs on a copy of its personalised weights right before evaluating them
        (default: none). Per-FedAvg's one adaptation step from the current global model goes here.

        ``ctx.global_state`` is the model to adapt (the :meth:`personalised_state`), ``ctx.state``
        a throw-away copy of the client's state and ``ctx.round`` is 0: nothing of the adaptation
        persists or is sent; :meth:`local_loss` and :meth:`after_backward` are called as in training.
        """
        return []

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

    def evaluation_logits(self, ctx: EvalContext, model: nn.Module, x: Tensor) -> Tensor:
        """Logits of the evaluated model on normalised images ``x`` (default: ``model(x)``).

        Mixtures of models, two-headed models or a kNN memory over features override this.
        """
        return model(x)
