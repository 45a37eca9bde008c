"""Message-shaped data to bytes and back: the proof that nothing but names, arrays and scalars crosses.

An engine that runs server and clients in different processes (Flower) can carry only named arrays
and scalars. :func:`pack` refuses anything else with a message naming the offending key, and
:func:`unpack` rebuilds exactly what was packed (same keys in the same order, dtypes, shapes and
values). The format is a length-prefixed JSON header followed by the raw array bytes; no pickle.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import torch
from torch import Tensor

from algorithms.api import Arrays, ClientUpdate, Message, Scalar

__all__ = [
    "NotMessageShaped",
    "check_scalars",
    "pack",
    "pack_state",
    "pack_update",
    "unpack",
    "unpack_state",
    "unpack_update",
]

_MAGIC = b"FAB1"
_DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16", torch.int64: "int64",
           torch.int32: "int32", torch.int16: "int16", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool"}
_TORCH = {v: k for k, v in _DTYPES.items()}
#: The group under which :func:`pack` stores the weights.
WEIGHTS = "__weights__"


class NotMessageShaped(TypeError):
    """A value that cannot cross between processes: not a tensor group and not a scalar."""


def check_scalars(config: dict[str, Any], where: str) -> dict[str, Scalar]:
    """``config`` unchanged if every value is a bool, int, float or str; else raise naming the key."""
    for k, v in config.items():
        if not isinstance(k, str) or not isinstance(v, (bool, int, float, str)):
            raise NotMessageShaped(f"{where}: config[{k!r}] is {type(v).__name__}; only bool, int, float and str "
                                   "cross the wire (put arrays in Message.arrays)")
    return config


def _check_group(name: str, arrays: Any, where: str) -> Arrays:
    if not isinstance(name, str) or not isinstance(arrays, dict):
        raise NotMessageShaped(f"{where}: {name!r} must be a dict of named tensors, got {type(arrays).__name__}")
    for k, v in arrays.items():
        if not isinstance(k, str) or not isinstance(v, Tensor):
            raise NotMessageShaped(f"{where}: {name}[{k!r}] is {type(v).__name__}; only tensors go in a named group")
        if v.dtype not in _DTYPES:
            raise NotMessageShaped(f"{where}: {name}[{k!r}] has dtype {v.dtype}; use one of {sorted(_DTYPES.values())}")
    return arrays


def pack(weights: Arrays, message: Message, header: dict[str, Scalar] | None = None, where: str = "message") -> bytes:
    """Bytes of weights, a message and engine-level scalars (round, client id, sample count)."""
    groups = {WEIGHTS: _check_group(WEIGHTS, weights, where)}
    for name, arrays in message.arrays.items():
        if name == WEIGHTS:
            raise NotMessageShaped(f"{where}: the group name {WEIGHTS!r} is reserved")
        groups[name] = _check_group(name, arrays, where)
    entries, blobs, offset = [], [], 0
    for group, arrays in groups.items():
        for key, t in arrays.items():
            raw = t.detach().cpu().contiguous().numpy().tobytes()
            entries.append([group, key, _DTYPES[t.dtype], list(t.shape), offset, len(raw)])
            blobs.append(raw)
            offset += len(raw)
    head = json.dumps({"groups": list(groups), "entries": entries,
                       "config": check_scalars(dict(message.config), where),
                       "header": check_scalars(dict(header or {}), where)}).encode()
    return _MAGIC + struct.pack("<Q", len(head)) + head + b"".join(blobs)


def unpack(data: bytes, device: torch.device | str = "cpu") -> tuple[Arrays, Message, dict[str, Scalar]]:
    """Inverse of :func:`pack`: ``(weights, message, header)`` with tensors on ``device``."""
    if data[:4] != _MAGIC:
        raise ValueError("not a packed message (bad magic bytes); was it written by algorithms.wire.pack?")
    (n,) = struct.unpack("<Q", data[4:12])
    head = json.loads(data[12:12 + n])
    body = memoryview(data)[12 + n:]
    groups: dict[str, Arrays] = {g: {} for g in head["groups"]}
    for group, key, dtype, shape, offset, size in head["entries"]:
        arr = np.frombuffer(body[offset:offset + size], dtype=np.dtype(dtype)).reshape(shape)
        groups[group][key] = torch.from_numpy(arr.copy()).to(device)
    weights = groups.pop(WEIGHTS)
    return weights, Message(arrays=groups, config=head["config"]), head["header"]


def pack_update(update: ClientUpdate) -> bytes:
    """Bytes of a client's reply."""
    return pack(update.weights, update.message, {"client_id": update.client_id, "num_samples": update.num_samples,
                                                 "train_loss": float(update.train_loss)}, where="client update")


def unpack_update(data: bytes, device: torch.device | str = "cpu") -> ClientUpdate:
    """Inverse of :func:`pack_update`."""
    weights, message, head = unpack(data, device)
    return ClientUpdate(int(head["client_id"]), weights, int(head["num_samples"]), message, float(head["train_loss"]))


def pack_state(state: dict[str, Any], where: str = "client state") -> bytes:
    """Bytes of a client's persistent state (values: named tensor groups or scalars)."""
    arrays = {k: v for k, v in state.items() if isinstance(v, dict)}
    scalars = {k: v for k, v in state.items() if not isinstance(v, dict)}
    return pack({}, Message(arrays=arrays, config=scalars), {"order": json.dumps(list(state))}, where=where)


def unpack_state(data: bytes, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Inverse of :func:`pack_state` (same keys in the same order)."""
    _, message, head = unpack(data, device)
    merged = {**message.arrays, **message.config}
    return {k: merged[k] for k in json.loads(str(head["order"]))}
