"""Named records: the algorithm hooks' nested dicts <-> Flower's ArrayRecord + ConfigRecord.

Why: Flower carries no Python objects, only records of arrays and scalars. Everything an algorithm
exchanges beyond the weights (SCAFFOLD's ``c`` and ``delta_c``, prototypes, statistics, per-round
settings) and everything a client keeps (control variates, personal layers, a personal model) is a
nested dict whose leaves are tensors or plain values. :func:`pack` flattens such a dict into one
ArrayRecord (tensors, under ``a/b/c`` paths) and one ConfigRecord (every other leaf as JSON, plus the
shape of the tree), and :func:`unpack` rebuilds it exactly (dtype, shape, key order, empty dicts).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

__all__ = ["SEP", "pack", "pack_into", "state_from_record", "state_to_record", "unpack", "unpack_from"]

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
