"""Privacy checks on what a client uploads: no raw images ever, and nothing undeclared beyond weights.

A client's upload is every array in its reply through the serialising transport: the weights and
each named group of its :class:`algorithms.api.Message`. Two rules, checked by
``tests/test_algo_uploads.py`` over every registered algorithm:

* **No raw input image**, whatever the catalog declares: no uploaded array holds, as a row of a plain
  reshape (channel-first or channel-last), an image channel of the client's data or its normalised
  form. "Holds" means a Pearson correlation of at least :data:`COPY_CORRELATION` between an uploaded
  row and an input channel plane: 1 for a copy, a dtype cast, ``x / 255`` or the engine's
  normalisation (each an affine map of the pixels), far below it for anything a network computed.
  Noise added on purpose (FedFed's protection) lowers the correlation; the catalog must then declare
  ``"features"``.
* **Weights only unless declared**: an algorithm whose catalog ``shares`` is empty uploads only
  *weight-shaped* arrays (named as an entry of the model's state dict, with that entry's shape:
  weights, deltas, control variates, sensitivities per parameter) or *small statistics* (at most one
  number per class, e.g. a sample count per class: the label histogram the server already holds from
  the sites' statistics reports). Anything else (feature moments, prototypes, per-example features,
  logits) must appear in ``shares``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from algorithms.aggregation import StateDict
from algorithms.api import ClientUpdate, Message
from algorithms.wire import pack
from fl_core.client import FitReply, SiteClient, unpack_reply
from fl_core.data import FederatedData, normalise
from fl_core.transport import SerialisingTransport

__all__ = ["COPY_CORRELATION", "Upload", "UploadRecorder", "image_copies", "undeclared_arrays", "uploads"]

#: An uploaded row this correlated with an input channel plane counts as a copy of the image.
COPY_CORRELATION = 0.999


@dataclass(frozen=True)
class Upload:
    """One uploaded array: where it travelled (``"weights"`` or a message group), its name and value."""

    group: str
    key: str
    value: Tensor


class UploadRecorder(SerialisingTransport):
    """The serialising transport, keeping every client reply as it came off the wire."""

    name = "serialising"

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[ClientUpdate] = []

    def fit(self, client: SiteClient, rnd: int, stage: int, weights: StateDict, message: Message) -> FitReply:
        down = pack(weights, message, {"round": rnd, "stage": stage}, where=f"configure_client for client {client.cid}")
        up = client.fit_bytes(down)
        self.bytes_down += len(down)
        self.bytes_up += len(up)
        reply = unpack_reply(up, "cpu")
        self.replies.append(reply.update)
        return reply


def uploads(replies: list[ClientUpdate]) -> list[Upload]:
    """Every array in ``replies``: the weights, then each message group's arrays."""
    out = []
    for u in replies:
        out += [Upload("weights", k, v) for k, v in u.weights.items()]
        out += [Upload(g, k, v) for g, arrays in u.message.arrays.items() for k, v in arrays.items()]
    return out


def _rows(x: Tensor, plane: int) -> Tensor:
    """Standardised rows (zero mean, unit norm) of ``x`` cut into ``plane``-long pieces."""
    r = x.detach().reshape(-1, plane).double()
    r = r - r.mean(dim=1, keepdim=True)
    return r / r.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _planes(x: Tensor, channels: int, side: tuple[int, int]) -> list[Tensor]:
    """``x`` read as channel-first and as channel-last images, one row per channel plane."""
    h, w = side
    views = [x.reshape(-1, h * w)]
    if x.numel() % (channels * h * w) == 0:
        views.append(x.reshape(-1, h, w, channels).permute(0, 3, 1, 2).reshape(-1, h * w))
    return views


def image_copies(items: list[Upload], data: FederatedData) -> list[str]:
    """Uploads that hold a raw (or merely rescaled / normalised) input image channel; empty when none."""
    images = torch.cat([s.x for c in data.clients for s in (c.train, c.val, c.test) if len(s)])
    channels, h, w = images.shape[1:]
    raw = _rows(normalise(images), h * w)  # an affine map of a plane (a cast, /255) has the same row
    found = []
    for item in items:
        if item.value.numel() % (h * w):
            continue
        for view in _planes(item.value.float(), channels, (h, w)):
            rows = _rows(view, h * w)
            flat = rows.norm(dim=1) > 0.5  # constant rows carry no image
            if flat.any():
                best = (rows[flat] @ raw.T).abs().max().item()
                if best >= COPY_CORRELATION:
                    found.append(f"{item.group}/{item.key} {tuple(item.value.shape)} (correlation {best:.4f} "
                                 "with an input image channel)")
                    break
    return found


def undeclared_arrays(items: list[Upload], state_shapes: dict[str, torch.Size], num_classes: int) -> list[str]:
    """Uploads that are neither weight-shaped nor a small statistic (see the module docstring)."""
    odd = []
    for item in items:
        if state_shapes.get(item.key) == item.value.shape or item.value.numel() <= num_classes:
            continue
        odd.append(f"{item.group}/{item.key} {tuple(item.value.shape)}")
    return sorted(set(odd))
