"""C3 tools: list local label names, map them onto the task's target classes, report aggregates.

``apply_label_map`` turns an organised (and cleaned) dataset folder ``<...>/<dataset>/<label>/`` into
``work/harmonized/<class>/<dataset>/``; each dataset keeps its own sub-folder, so a site with several
datasets maps them one call each and re-running a dataset replaces only that dataset's files. The
maps applied are recorded in ``work/harmonized/label_maps.json`` (the training reader ignores files
at that level). ``client_statistics`` gives the server the aggregates its algorithm selector needs.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.tools import ToolException
from PIL import Image
from pydantic import BaseModel, Field

from tools.imageio import is_image_name
from tools.privacy import DATA_NOTE, as_data, unquote
from tools.sandbox import SandboxError, Workspace, safe_component

HARMONIZED = "harmonized"
MAPS_FILE = "label_maps.json"
STATS_MAX_IMAGES = 2000
DROP_WORDS = ("", "drop", "none", "null")


def _label_folder(ws: Workspace, folder: str) -> Path:
    path = ws.resolve(folder)
    if not path.is_dir() or ws.work not in path.parents:
        raise SandboxError(f"{as_data(folder, 120)} is not a folder under 'work/'; organise the dataset first and "
                           "pass its output folder, e.g. 'work/organized/<dataset>'")
    return path


def _images_by_label(ws: Workspace, root: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        out[sub.name] = [f for f in ws.walk_files(sub) if is_image_name(f.name)]
    return out


def list_labels(ws: Workspace, folder: str) -> dict[str, Any]:
    """List the label names (class sub-folders) of an organised dataset folder with image counts.

    Names are quoted as data and are exactly the site's own; pass them (with or without the
    <data> marks) as keys of apply_label_map's mapping.
    """
    root = _label_folder(ws, folder)
    counts = {as_data(k, 80): len(v) for k, v in _images_by_label(ws, root).items()}
    if not counts:
        raise ToolException(f"{ws.rel(root)} has no label sub-folders; run organize_dataset first")
    return {"folder": ws.rel(root), "labels": counts, "n_images": sum(counts.values()), "note": DATA_NOTE}


def _check_map(labels: dict[str, list[Path]], mapping: dict[str, str | None],
               targets: list[str]) -> dict[str, str | None]:
    if not targets or len(set(targets)) != len(targets) or any(not t.strip() for t in targets):
        raise ToolException("target_classes must list the task's classes once each, e.g. ['benign', 'malignant']")
    for t in targets:  # each becomes a folder under work/harmonized/
        safe_component(t, "target class")
    clean: dict[str, str | None] = {}
    for key, value in mapping.items():
        name = unquote(key)
        if name in clean:
            raise ToolException(f"label {as_data(name, 80)} is given twice in the mapping (as different spellings); "
                                "give each local label once")
        if name not in labels:
            near = [k for k in labels if k.casefold().strip() == name.casefold()]
            hint = f" Did you mean {as_data(near[0], 80)}?" if near else ""
            raise ToolException(f"{as_data(name, 80)} is not a label of this folder.{hint} Its labels are "
                                f"{[as_data(k, 80) for k in labels]}; call list_labels to see them")
        target = None if value is None or value.strip().lower() in DROP_WORDS else value.strip()
        if target is not None and target not in targets:
            raise ToolException(f"{as_data(value, 80)} is not one of target_classes {targets}; map "
                                f"{as_data(name, 80)} to one of them, or to null to drop it")
        clean[name] = target
    folded = Counter(k.casefold() for k in clean)
    for k in clean:
        if folded[k.casefold()] > 1 and len({clean[j] for j in clean if j.casefold() == k.casefold()}) > 1:
            raise ToolException(f"labels that differ only in case ({as_data(k, 80)}, ...) are sent to different "
                                "classes; check the spelling, they are probably the same label")
    return clean


def _existing_counts(out: Path, dataset: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    if out.is_dir():
        for cls in (p for p in out.iterdir() if p.is_dir()):
            for ds in (p for p in cls.iterdir() if p.is_dir() and p.name != dataset):
                counts[cls.name] += sum(1 for f in ds.rglob("*") if f.is_file())
    return counts


def apply_label_map(ws: Workspace, folder: str, mapping: dict[str, str | None],
                    target_classes: list[str]) -> dict[str, Any]:
    """Map an organised dataset's local labels onto the task's target classes.

    Writes work/harmonized/<class>/<dataset>/ (re-running replaces this dataset's files only).
    mapping: local label -> target class, or null to drop it. Refused: unknown local labels, a class
    outside target_classes, a label given twice, or a map that leaves all target classes but one
    empty (counting datasets already harmonised). Labels left out of the map are reported.
    """
    root = _label_folder(ws, folder)
    if root == ws.work / HARMONIZED or ws.work / HARMONIZED in root.parents:
        raise SandboxError("pass the organised (or cleaned) dataset folder, e.g. 'work/organized/<dataset>', "
                           "not the harmonised output")
    labels = _images_by_label(ws, root)
    if not labels:
        raise ToolException(f"{ws.rel(root)} has no label sub-folders; run organize_dataset first")
    targets = [t.strip() for t in target_classes]
    clean = _check_map(labels, mapping, targets)
    out = ws.work / HARMONIZED
    dataset = safe_component(root.name, "dataset folder")
    ws.writable(out / MAPS_FILE)  # a link at work/, work/harmonized or the map file: refused before any change
    planned = _existing_counts(out, dataset)
    for label, target in clean.items():
        if target is not None:
            planned[target] += len(labels[label])
    filled = [t for t in targets if planned[t] > 0]
    if len(targets) > 1 and len(filled) < 2:
        raise ToolException(f"this map leaves {[t for t in targets if t not in filled]} empty (only {filled} would "
                            "have images); check which local labels correspond to each target class")
    stale = [c / dataset for c in (out.iterdir() if out.is_dir() else []) if os.path.lexists(c / dataset)]
    for path in stale + [out / t / dataset for t in targets]:  # every link refused before anything changes
        ws.writable(path)
    for path in stale:
        ws.remove_tree(path)
    written: Counter[str] = Counter()
    for label, target in clean.items():
        if target is None:
            continue
        dest = ws.make_dir(out / safe_component(target, "target class") / dataset)
        for src in labels[label]:
            name = src.name if not os.path.lexists(dest / src.name) else f"{label}_{src.name}"
            ws.copy_file(src, dest / name)
            written[target] += 1
    _record_map(ws, out, dataset, clean, targets)
    unmapped = {as_data(k, 80): len(v) for k, v in labels.items() if k not in clean}
    return {
        "output": ws.rel(out), "dataset": as_data(dataset, 120),
        "mapping": {as_data(k, 80): v for k, v in clean.items()},
        "written_per_class": {t: written[t] for t in targets},
        "all_datasets_per_class": {t: planned[t] for t in targets},
        "dropped": {as_data(k, 80): len(labels[k]) for k, v in clean.items() if v is None},
        "not_in_map_so_not_included": unmapped,
        "empty_classes": [t for t in targets if planned[t] == 0],
        "note": DATA_NOTE,
    }


def _record_map(ws: Workspace, out: Path, dataset: str, clean: dict[str, str | None], targets: list[str]) -> None:
    path = ws.writable(out / MAPS_FILE)
    maps = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    maps[dataset] = {"mapping": clean, "target_classes": targets}
    ws.write_text(path, json.dumps(maps, indent=1, ensure_ascii=False))


def client_statistics(ws: Workspace, folder: str = "work/harmonized") -> dict[str, Any]:
    """Aggregate statistics of a prepared training folder, for the server's algorithm selector.

    Numbers only: images per class, total images, mean and std pixel intensity (0..1, grayscale)
    and mean image side in pixels. No pixels, no file names.
    """
    root = _label_folder(ws, folder)
    by_class = _images_by_label(ws, root)
    files = sorted(f for fs in by_class.values() for f in fs)
    step = max(1, len(files) // STATS_MAX_IMAGES)
    means, sq_means, sides, unreadable = [], [], [], 0
    for path in files[::step]:
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
                sides.append((im.width + im.height) / 2)
        except Exception:  # noqa: BLE001 - PIL raises many types; a bad file only leaves the statistics
            unreadable += 1
            continue
        means.append(arr.mean())
        sq_means.append((arr ** 2).mean())
    mean = float(np.mean(means)) if means else 0.0
    std = float(np.sqrt(max(0.0, np.mean(sq_means) - mean ** 2))) if means else 0.0
    return {
        "class_counts": {k if k.isprintable() and len(k) <= 60 else as_data(k, 60): len(v) for k, v in by_class.items()},
        "n_images": len(files),
        "intensity_mean": round(mean, 4), "intensity_std": round(std, 4),
        "mean_image_side": round(float(np.mean(sides)), 1) if sides else 0.0,
        "images_measured": len(means), "unreadable": unreadable,
    }


class LabelFolderArgs(BaseModel):
    folder: str = Field(description="organised dataset folder under work/, e.g. 'work/organized/<dataset>'")


class LabelMapArgs(LabelFolderArgs):
    mapping: dict[str, str | None] = Field(description="local label name -> target class, or null to drop it")
    target_classes: list[str] = Field(min_length=1, description="the task's target classes")


class StatsArgs(BaseModel):
    folder: str = Field("work/harmonized", description="prepared folder with one sub-folder per class")


#: (function, argument schema) of each tool this module offers; tools.client binds them to a site.
TOOLS = [(list_labels, LabelFolderArgs), (apply_label_map, LabelMapArgs), (client_statistics, StatsArgs)]
