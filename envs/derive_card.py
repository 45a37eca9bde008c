"""A data card for a user's own dataset, derived from what is on disk and marked as derived.

C1 decides from cards: it needs the modality, body part, task type and label names. A hospital that
registers a folder seldom writes a card, so registration derives one: the modality the user gave,
the modality's usual body part (unless given), and the label names and counts read from the label
source :func:`tools.label_sources.detect` finds. Every derived field is listed under ``derived`` so
nobody mistakes it for a steward's statement; the user may edit the file.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any

from envs.concepts import PRIMARY_BODY_PART
from tools.label_sources import Detection, detect
from tools.layout_readers import Inventory

DERIVED_NOTE = ("derived at registration from the files on disk, not written by a data steward; edit this file "
                "to correct any of these fields")


def walk(root: Path) -> list[Path]:
    """Every regular file under ``root`` (links not followed), in a stable order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        out += [Path(dirpath, n) for n in sorted(filenames) if Path(dirpath, n).is_file()]
    return out


def inspect_folder(root: Path) -> tuple[Inventory, Detection]:
    inv = Inventory.scan(root, walk)
    return inv, detect(inv)


def is_dataset(root: Path) -> bool:
    """A dataset in its own right: images with a label table, or at least two class folders."""
    inv, det = inspect_folder(root)
    return bool(inv.images) and (det.option is not None or len(set(det.source.labels.values())) >= 2)


def _task_type(labels: Counter[str], inv: Inventory) -> str:
    if len(labels) >= 2:
        ordinal = all(x.strip().isdigit() for x in labels) and len(labels) >= 3
        return "grading" if ordinal else "classification"
    if inv.masks:
        return "segmentation"
    return "unlabelled" if not labels else "classification"


def _format(images: list[PurePosixPath]) -> str:
    exts = Counter(p.name.lower().rsplit(".", 1)[-1] if "." in p.name else "?" for p in images)
    if not exts:
        return "none"
    top, n = exts.most_common(1)[0]
    return {"gz": "nii.gz", "jpeg": "jpg"}.get(top, top) if n >= 0.8 * len(images) else "mixed"


def derive_card(root: Path, name: str, folder: str, modality: str, body_part: str | None,
                description: str) -> dict[str, Any]:
    """The card of the dataset at ``root`` (registered under ``folder``, relative to the site)."""
    inv, det = inspect_folder(root)
    labels = Counter(det.source.labels.values())
    source = det.source.kind if det.source.kind != "none" else "no label source found"
    if det.source.table is not None:
        source += f" table {det.source.table} (label column {det.source.label_column})"
        if det.merged_tables:
            source += f", merged with {', '.join(str(t) for t in det.merged_tables)}"
    elif det.chosen_level is not None:
        source += f" at folder level {det.chosen_level}"
    card: dict[str, Any] = {
        "name": name, "folder": folder, "modality": modality,
        "body_part": body_part or PRIMARY_BODY_PART.get(modality, "unknown"),
        "task_type": _task_type(labels, inv),
        "labels": sorted(labels), "label_counts": dict(sorted(labels.items())),
        "approx_images": len(inv.images), "file_format": _format(inv.images),
        "description": description or "registered by the user; no steward description",
        "derived": {"fields": ["body_part", "task_type", "labels", "label_counts", "approx_images", "file_format"]
                    if not body_part else ["task_type", "labels", "label_counts", "approx_images", "file_format"],
                    "label_source": source, "note": DERIVED_NOTE},
    }
    if det.tree.split:
        card["splits"] = det.tree.split_counts()
    if det.ambiguities:
        card["derived"]["open_choices"] = [f"{a.kind}: {a.seen}" for a in det.ambiguities]
        card["derived"]["note"] += ("; the label source is ambiguous (see open_choices): the labels above are the "
                                    "proposed reading, and organising will ask which one to use")
    if inv.litter:
        card["os_litter_files"] = len(inv.litter)
    return card
