"""Named records: the contract's messages and a client's state <-> Flower's ArrayRecord + ConfigRecord.

The contract (``algorithms.api.Message``) is already record-shaped: each named array group becomes
one ArrayRecord ``<prefix>.<group>`` and the scalar config one ConfigRecord ``<prefix>.config``
(:func:`message_into` / :func:`message_from`). So everything an algorithm exchanges beyond the
weights (SCAFFOLD's ``c`` and ``delta_c``, prototypes, statistics, per-round settings) travels as
named records, and a client's state (control variates, personal layers, a personal model) is kept
the same way in the ClientApp's context state (:func:`state_into` / :func:`state_from`).
:func:`pack` / :func:`unpack` carry a nested dict of tensors and plain values (the evaluation counts).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from algorithms.api import Message

__all__ = ["SEP", "message_from", "message_into", "pack", "pack_into", "state_from", "state_from_record",
           "state_into", "state_to_record", "unpack", "unpack_from"]

SEP = "/"
_TREE = "__tree__"


def _walk(obj: Any, prefix: str, arrays: dict[str, Array], values: dict[str, Any]) -> Any:
    """The tree's skeleton (for the ConfigRecord), collecting tensor leaves into ``arrays``."""
    if isinstance(obj, dict):
        skeleton = {}
        for k, v in obj.items():
            if not isinstance(k, str) or SEP in k:
                raise ValueError(f"record keys must be strings without {SEP!r}, got {k!r}")
            skeleton[k] = _walk(v, f"{prefix}{k}{SEP}", arrays, values)
        return {"d": skeleton}
    if isinstance(obj, torch.Tensor):
        path = prefix.rstrip(SEP)
        arrays[path] = Array(obj.detach().cpu().contiguous().numpy())
        return {"t": path}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (torch.Tensor, dict)) for v in obj):
        return {"l": [_walk(v, f"{prefix}{i}{SEP}", arrays, values) for i, v in enumerate(obj)]}
    try:
        json.dumps(obj)
    except TypeError as exc:
        raise TypeError(f"cannot send {type(obj).__name__} at {prefix.rstrip(SEP)!r}: record leaves must be "
                        "tensors, numbers, strings, booleans, None or lists of them") from exc
    return {"v": obj}


def pack(tree: dict[str, Any]) -> tuple[ArrayRecord, ConfigRecord]:
    """A nested dict -> (its tensors, its skeleton and plain values)."""
    arrays: dict[str, Array] = {}
    skeleton = _walk(tree, "", arrays, {})
    return ArrayRecord(arrays), ConfigRecord({_TREE: json.dumps(skeleton)})


def _build(node: dict[str, Any], arrays: ArrayRecord) -> Any:
    if "d" in node:
        return {k: _build(v, arrays) for k, v in node["d"].items()}
    if "t" in node:
        return torch.from_numpy(np.array(arrays[node["t"]].numpy(), copy=True))
    if "l" in node:
        return [_build(v, arrays) for v in node["l"]]
    return node["v"]


def unpack(arrays: ArrayRecord, config: ConfigRecord) -> dict[str, Any]:
    """Inverse of :func:`pack` (tensors come back on the CPU)."""
    return _build(json.loads(str(config[_TREE])), arrays)


def pack_into(content: RecordDict, name: str, tree: dict[str, Any]) -> None:
    """Store ``tree`` in ``content`` as ``<name>.arrays`` and ``<name>.config``."""
    arrays, config = pack(tree)
    content[f"{name}.arrays"] = arrays
    content[f"{name}.config"] = config


def unpack_from(content: RecordDict, name: str) -> dict[str, Any]:
    """The tree :func:`pack_into` stored under ``name``; ``{}`` when there is none."""
    if f"{name}.config" not in content:
        return {}
    return unpack(content.array_records[f"{name}.arrays"], content.config_records[f"{name}.config"])


def state_to_record(state: dict[str, torch.Tensor]) -> ArrayRecord:
    """A state dict -> ArrayRecord (key order kept; integer buffers keep their dtype)."""
    return ArrayRecord({k: Array(v.detach().cpu().contiguous().numpy()) for k, v in state.items()})


def state_from_record(record: ArrayRecord, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Inverse of :func:`state_to_record`."""
    return {k: torch.from_numpy(np.array(a.numpy(), copy=True)).to(device) for k, a in record.items()}


_GROUPS = "__groups__"
_LOCAL = "__local_weights__"


def message_into(content: RecordDict, prefix: str, message: Message) -> None:
    """Store a contract message as one ArrayRecord per named group plus one ConfigRecord."""
    for group, arrays in message.arrays.items():
        content[f"{prefix}.{group}"] = state_to_record(arrays)
    content[f"{prefix}.config"] = ConfigRecord({**message.config, _GROUPS: json.dumps(list(message.arrays))})


def message_from(content: RecordDict, prefix: str, device: torch.device | str = "cpu") -> Message:
    """Inverse of :func:`message_into` (an empty message when ``prefix`` is absent)."""
    if f"{prefix}.config" not in content:
        return Message()
    config = dict(content.config_records[f"{prefix}.config"])
    groups = json.loads(str(config.pop(_GROUPS)))
    arrays = {g: state_from_record(content.array_records[f"{prefix}.{g}"], device) for g in groups}
    return Message(arrays=arrays, config=config)


def state_into(content: RecordDict, prefix: str, state: dict[str, Any], local: dict[str, torch.Tensor]) -> None:
    """A client's persistent state (named arrays or scalars) and its local weights, as records."""
    for key in [k for k in content if k.startswith(f"{prefix}.")]:
        del content[key]
    arrays = {k: v for k, v in state.items() if isinstance(v, dict)}
    scalars = {k: v for k, v in state.items() if not isinstance(v, dict)}
    message_into(content, prefix, Message(arrays={**arrays, _LOCAL: local},
                                          config={**scalars, "__order__": json.dumps(list(state))}))


def state_from(content: RecordDict, prefix: str, device: torch.device | str = "cpu"
               ) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
    """Inverse of :func:`state_into`; ``None`` when the context holds no state yet."""
    if f"{prefix}.config" not in content:
        return None
    msg = message_from(content, prefix, device)
    local = msg.arrays.pop(_LOCAL)
    order = json.loads(str(msg.config.pop("__order__")))
    merged = {**msg.arrays, **msg.config}
    return {k: merged[k] for k in order}, local
