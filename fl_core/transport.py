"""How the in-process server reaches its clients: directly, or through bytes as a real network would.

:class:`DirectTransport` hands Python objects over (fast; the default). :class:`SerialisingTransport`
packs every instruction and reply to bytes and back (``algorithms.wire``) and gives each client a
fresh algorithm instance that never saw the server's: a run through it equals a direct run exactly
when the algorithm keeps its promise that only named arrays and scalars cross, and client state
stays on the client. The Flower engine stands where this one stands.
"""

from __future__ import annotations

from typing import Protocol

import torch

from algorithms.aggregation import StateDict
from algorithms.api import FLAlgorithm, Message
from algorithms.wire import check_scalars, pack, unpack
from fl_core.client import FitReply, SiteClient, unpack_reply

__all__ = ["TRANSPORTS", "DirectTransport", "SerialisingTransport", "Transport", "fresh_instance", "make_transport"]


def fresh_instance(algorithm: FLAlgorithm) -> FLAlgorithm:
    """A new instance with the same hyper-parameters: what a client in another process builds by name."""
    return type(algorithm)(**algorithm.get_params())


class Transport(Protocol):
    """The server's only ways to reach a client."""

    name: str

    def client_algorithm(self, algorithm: FLAlgorithm) -> FLAlgorithm: ...

    def fit(self, client: SiteClient, rnd: int, stage: int, weights: StateDict, message: Message) -> FitReply: ...

    def evaluate(self, client: SiteClient, weights: StateDict, personal: bool, calibrate: bool) -> Message: ...


def _check(message: Message, where: str) -> None:
    """Refuse a message that could not cross a real wire, also when nothing is serialised."""
    for name, group in message.arrays.items():
        if not isinstance(group, dict) or not all(isinstance(v, torch.Tensor) for v in group.values()):
            raise TypeError(f"{where}: Message.arrays[{name!r}] must be a dict of named tensors")
    check_scalars(message.config, where)


class DirectTransport:
    """Objects handed over in memory; clients share the server's algorithm instance."""

    name = "direct"

    def client_algorithm(self, algorithm: FLAlgorithm) -> FLAlgorithm:
        return algorithm

    def fit(self, client: SiteClient, rnd: int, stage: int, weights: StateDict, message: Message) -> FitReply:
        _check(message, f"configure_client for client {client.cid}")
        reply = client.fit(rnd, weights, message, stage)
        _check(reply.update.message, f"end_client of client {client.cid}")
        return reply

    def evaluate(self, client: SiteClient, weights: StateDict, personal: bool, calibrate: bool) -> Message:
        return client.evaluate(weights, personal, calibrate)


class SerialisingTransport:
    """Every exchange goes to bytes and back; clients get fresh algorithm instances.

    Attributes:
        bytes_down: bytes sent to clients so far.
        bytes_up: bytes received from clients so far.
    """

    name = "serialising"

    def __init__(self) -> None:
        self.bytes_down = 0
        self.bytes_up = 0

    def client_algorithm(self, algorithm: FLAlgorithm) -> FLAlgorithm:
        return fresh_instance(algorithm)

    def fit(self, client: SiteClient, rnd: int, stage: int, weights: StateDict, message: Message) -> FitReply:
        down = pack(weights, message, {"round": rnd, "stage": stage}, where=f"configure_client for client {client.cid}")
        up = client.fit_bytes(down)
        self.bytes_down += len(down)
        self.bytes_up += len(up)
        return unpack_reply(up, client.cfg.device)

    def evaluate(self, client: SiteClient, weights: StateDict, personal: bool, calibrate: bool) -> Message:
        down = pack(weights, Message(), {"personal": personal, "calibrate": calibrate}, where="evaluation request")
        up = client.evaluate_bytes(down)
        self.bytes_down += len(down)
        self.bytes_up += len(up)
        return unpack(up, "cpu")[1]


#: Transport names the engine accepts.
TRANSPORTS = {"direct": DirectTransport, "serialising": SerialisingTransport}


def make_transport(name: str) -> Transport:
    """A transport by name (:data:`TRANSPORTS`)."""
    if name not in TRANSPORTS:
        raise ValueError(f"unknown transport {name!r}; choose one of {sorted(TRANSPORTS)}")
    return TRANSPORTS[name]()
