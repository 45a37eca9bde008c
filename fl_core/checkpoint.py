"""Per-round checkpoints: written atomically, resumed only when the configuration matches."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from fl_core.config import RunConfig

__all__ = ["CHECKPOINT_NAME", "load", "save", "to_device"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"


def path(cfg: RunConfig) -> Path:
    """Where ``cfg``'s checkpoint lives."""
    return Path(cfg.out_dir) / CHECKPOINT_NAME


def save(cfg: RunConfig, state: dict[str, Any]) -> None:
    """Write ``state`` to a temporary file and rename it, so a kill never leaves half a checkpoint."""
    target = path(cfg)
    tmp = target.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, target)


def load(cfg: RunConfig) -> dict[str, Any] | None:
    """The checkpoint in ``cfg.out_dir``, or ``None`` when there is none.

    Raises:
        ValueError: the checkpoint belongs to a different configuration (resuming it would mix two
            runs); the message says how to proceed.
    """
    p = path(cfg)
    if not p.exists():
        return None
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    if ckpt.get("fingerprint") != cfg.fingerprint():
        raise ValueError(
            f"{p} was written by a run with a different configuration; use another --out directory, "
            "delete the checkpoint, or pass resume=False (--no-resume) to start over"
        )
    return ckpt


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor inside nested dicts/lists/tuples to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj
