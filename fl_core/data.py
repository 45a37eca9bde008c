"""Federated data: prepared client folders -> cached tensors with per-client stratified splits.

A client's prepared dataset is ``<client_dir>/<class_name>/<image>``. The label space is the sorted
union of class names over all clients; a client may lack some classes. Images are decoded once,
resized and channel-converted, and kept as ``uint8`` tensors in memory, so that a round costs no
I/O and the FL engine runs as fast as pooled training (normalisation happens per batch).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

__all__ = [
    "IMAGE_SUFFIXES",
    "ClientData",
    "FederatedData",
    "Split",
    "list_site",
    "load_federation",
    "load_site",
    "normalise",
    "pooled",
    "stratified_split",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
_MEAN, _STD = 0.5, 0.5


@dataclass(frozen=True)
class Split:
    """Images (``uint8``, ``N x C x H x W``) and labels (``int64``) of one split."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.y.numel())

    def to(self, device: str | torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class ClientData:
    """One client's splits. ``name`` is its folder name, for reports.

    ``skipped`` lists the images that could not be decoded (``<class>/<file>: <reason>``); they are
    left out of every split rather than ending the run.
    """

    name: str
    train: Split
    val: Split
    test: Split
    skipped: tuple[str, ...] = ()

    def label_counts(self, num_classes: int) -> Tensor:
        """Training examples per class."""
        return torch.bincount(self.train.y, minlength=num_classes)


@dataclass(frozen=True)
class FederatedData:
    """All clients plus the shared label space."""

    clients: tuple[ClientData, ...]
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def normalise(x: Tensor) -> Tensor:
    """``uint8`` images -> float in [-1, 1]; applied per batch on the training device."""
    return (x.float() / 255.0 - _MEAN) / _STD


def _list_images(client_dir: Path) -> list[tuple[Path, str]]:
    items = []
    for cls_dir in sorted(p for p in client_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(cls_dir.rglob("*")):
            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                items.append((f, cls_dir.name))
    return items


#: What PIL raises for a truncated, corrupt or unsupported file (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


def _decode(path: Path, image_size: int, in_chans: int) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("L" if in_chans == 1 else "RGB")
        im = im.resize((image_size, image_size), Image.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of train/val/test, split class by class with a seeded shuffle.

    Each class contributes ``round(n * fraction)`` examples to val and test, but never takes the
    last training example of a class (a class with one image stays in train).
    """
    rng = np.random.default_rng(seed)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n = len(idx)
        n_test = min(round(n * test_fraction), max(n - 1, 0))
        n_val = min(round(n * val_fraction), max(n - 1 - n_test, 0))
        parts[2].extend(idx[:n_test])
        parts[1].extend(idx[n_test:n_test + n_val])
        parts[0].extend(idx[n_test + n_val:])
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)  # type: ignore[return-value]


def load_federation(
    data_dirs: tuple[str, ...] | list[str],
    image_size: int = 64,
    in_chans: int = 3,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> FederatedData:
    """Load every client folder into cached tensors with stratified, seeded splits.

    Raises:
        ValueError: a folder has no class sub-folder with images, or fewer than 2 classes overall.
    """
    listed = [list_site(d) for d in data_dirs]
    classes = tuple(sorted({c for items in listed for _, c in items}))
    if len(classes) < 2:
        raise ValueError(f"only one class ({classes}) across all clients; classification needs >= 2")
    clients = tuple(load_site(d, classes, k, image_size, in_chans, val_fraction, test_fraction, seed, items)
                    for k, (d, items) in enumerate(zip(data_dirs, listed)))
    return FederatedData(clients=clients, classes=classes)


def list_site(client_dir: str | Path) -> list[tuple[Path, str]]:
    """A prepared folder's ``(image path, class name)`` pairs, sorted.

    Raises:
        ValueError: the folder holds no image under a class sub-folder.
    """
    items = _list_images(Path(client_dir))
    if not items:
        raise ValueError(f"client folder {str(client_dir)!r} holds no images under class sub-folders; expected "
                         "<client_dir>/<class_name>/<image>.png (run the preprocessing tools first)")
    return items


def load_site(
    client_dir: str | Path, classes: tuple[str, ...], index: int, image_size: int = 64, in_chans: int = 3,
    val_fraction: float = 0.15, test_fraction: float = 0.2, seed: int = 0,
    items: list[tuple[Path, str]] | None = None,
) -> ClientData:
    """One client's splits in the federation's label space, exactly as :func:`load_federation` makes them.

    Why separate: a client process of a distributed run (Flower) sees only its own folder; given the
    label space and its index in the federation it gets the same tensors and the same split.
    """
    d = Path(client_dir)
    items = list_site(d) if items is None else items
    unknown = sorted({c for _, c in items} - set(classes))
    if unknown:
        raise ValueError(f"client folder {str(client_dir)!r} has classes {unknown} outside the label space {classes}")
    lookup = {c: i for i, c in enumerate(classes)}
    arrays, labels, skipped = _decode_all(d, items, image_size, in_chans)
    x = torch.from_numpy(np.stack(arrays))
    y = np.array([lookup[c] for c in labels], dtype=np.int64)
    tr, va, te = stratified_split(y, val_fraction, test_fraction, seed * 1000 + index)
    yt = torch.from_numpy(y)
    log.info("client %d (%s): %d train, %d val, %d test%s", index, d.name, len(tr), len(va), len(te),
             f"; skipped {len(skipped)} unreadable image(s)" if skipped else "")
    return ClientData(name=d.name, train=Split(x[tr], yt[tr]), val=Split(x[va], yt[va]), test=Split(x[te], yt[te]),
                      skipped=tuple(skipped))


def _decode_all(client_dir: Path, items: list[tuple[Path, str]], image_size: int,
                in_chans: int) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Decode a client's images, skipping (and naming) those that cannot be read.

    One truncated or corrupt file should not end a federated run; a folder with no readable image
    at all is refused, naming its files, since training on it is impossible.

    Raises:
        ValueError: none of the folder's images can be decoded.
    """
    arrays, labels, skipped = [], [], []
    for path, cls in items:
        try:
            arrays.append(_decode(path, image_size, in_chans))
            labels.append(cls)
        except DECODE_ERRORS as exc:
            skipped.append(f"{path.relative_to(client_dir)}: {type(exc).__name__}: {exc}"[:300])
            log.warning("skipping unreadable image %s (%s)", path, exc)
    if not arrays:
        shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
        raise ValueError(f"none of the {len(items)} images in client folder {str(client_dir)!r} can be read "
                         f"({shown}); re-export them as PNG or JPEG, or leave this folder out")
    return arrays, labels, skipped


def pooled(data: FederatedData) -> ClientData:
    """All clients' splits concatenated (the centralised baseline's view of the same splits)."""

    def cat(parts: list[Split]) -> Split:
        return Split(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))

    cs = data.clients
    return ClientData("pooled", cat([c.train for c in cs]), cat([c.val for c in cs]), cat([c.test for c in cs]))
