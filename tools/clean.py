"""C2 cleaning tools: near-duplicates, off-topic images and likely label errors in an organised folder.

Each tool works on one folder of class sub-folders under ``work/`` (``work/organized/<dataset>``)
and either flags what it finds or moves it to ``work/removed/<step>/<folder>/...`` with a
``manifest.json`` beside it. Nothing is deleted: moving the files back undoes a step. Outputs are
counts and a few quoted file names, never pixels.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

from tools.cleaning_duplicates import DUPLICATE_SIMILARITY, find_duplicate_groups
from tools.cleaning_features import fingerprints_of, image_features
from tools.cleaning_labels import LABEL_FIT_MAX, LABEL_MIN_MARGIN, label_issues_of
from tools.cleaning_offtopic import OFFTOPIC_Z, offtopic_indices_of
from tools.cleaning_pairs import FingerprintStore
from tools.cleaning_scan import DescriptionCache, FolderImages, blas_single_threaded, load_folder
from tools.imageio import read_image
from tools.privacy import DATA_NOTE, as_data, bounded
from tools.sandbox import Workspace

REMOVED = "removed"
Mode = Literal["flag", "remove"]
MAX_EXAMPLES = 5


class _Folder(BaseModel):
    folder: str = Field(description="site-relative organised folder of class sub-folders, "
                                    "e.g. 'work/organized/<dataset>'")
    mode: Mode = Field(default="flag", description="'flag' only reports; 'remove' moves the files to "
                                                   "work/removed/<step>/ with a manifest (never deletes)")


class DuplicatesArgs(_Folder):
    min_similarity: float = Field(default=DUPLICATE_SIMILARITY, ge=0.5, le=1.0,
                                  description="fingerprint correlation that makes two images near-duplicates; "
                                              "raise it if distinct images are grouped")


class OfftopicArgs(_Folder):
    z_threshold: float = Field(default=OFFTOPIC_Z, ge=1.0, le=50.0,
                               description="robust z-score of the outlier score above which an image is "
                                           "always off-topic (below it the folder's largest score gap "
                                           "decides); raise it to flag fewer")


class LabelErrorArgs(_Folder):
    folds: int = Field(default=5, ge=2, le=10, description="cross-validation folds for out-of-fold predictions")
    min_margin: float = Field(default=LABEL_MIN_MARGIN, ge=0.0, lt=1.0,
                              description="report an image only if the model's likeliest class beats its "
                                          "folder's label by more than this probability; raise it to flag "
                                          "fewer, surer images, lower it to find more")


#: Image features of the last folder described, shared by find_offtopic and find_label_errors (see
#: :class:`~tools.cleaning_scan.DescriptionCache`).
FEATURES = DescriptionCache()


def _open_folder(ws: Workspace, folder: str, write: bool, describe: Callable[[Any], Any],
                 step: str, cache: DescriptionCache | None = None,
                 keep: Callable[[Any], Any] | None = None) -> tuple[Path, FolderImages]:
    """The organised folder to clean: under ``work/`` only (never raw/, the site root or work/removed/),
    and what ``describe`` keeps of each of its images (each decoded once, its pixels then dropped).

    Cleaning reads class sub-folders the organiser wrote; a raw folder would echo the site's own file
    paths (patient-numbered folders among them) and is refused even in 'flag' mode.
    """
    root = ws.resolve(folder, write=write)
    if not root.is_dir():
        raise ToolException(f"{as_data(folder, 120)} is a file; pass the organised folder that holds the class "
                            "sub-folders, e.g. 'work/organized/<dataset>'")
    if ws.work not in root.parents or ws.work / REMOVED in [root, *root.parents]:
        raise ToolException(f"{as_data(folder, 120)} is not an organised dataset folder: cleaning works only on "
                            "folders under 'work/' that organize_dataset wrote; pass 'work/organized/<dataset>'")
    files = ws.walk_files(root)
    data = load_folder(files, root, describe, what=f"{step}: reading images", cache=cache, keep=keep)
    if not data.images:
        raise ToolException(f"{as_data(folder, 120)} holds no readable images; organise the dataset into it first "
                            f"({len(data.unreadable)} unreadable, {len(data.skipped)} non-image files)")
    return root, data


def _names(ws: Workspace, root: Path, paths: list[Path]) -> list[str]:
    return [as_data(p.relative_to(root).as_posix(), 120) for p in paths]


def _move(ws: Workspace, step: str, root: Path, paths: list[Path], reasons: dict[Path, str]) -> str:
    """Move ``paths`` under work/removed/<step>/<folder>/ keeping their class sub-folders; write manifest."""
    dest_root = ws.work / REMOVED / step / root.relative_to(ws.work).as_posix().replace("/", "__")
    manifest_path = ws.writable(dest_root / "manifest.json")  # refuses a link at work/removed/... first
    for p in paths:
        ws.writable(p)
        ws.writable(dest_root / p.relative_to(root))
    ws.make_dir(dest_root)
    records = json.loads(manifest_path.read_text())["moved"] if manifest_path.exists() else []
    for p in paths:
        target = dest_root / p.relative_to(root)
        ws.make_dir(target.parent)
        if os.path.lexists(target):  # moved there by an earlier run and put back: keep both
            target = target.with_name(f"{target.stem}_{len(records)}{target.suffix}")
        ws.move(p, target)
        records.append({"from": ws.rel(p), "to": ws.rel(target), "reason": reasons.get(p, step)})
    ws.write_text(manifest_path, json.dumps({"step": step, "folder": ws.rel(root), "moved": records}, indent=1))
    return ws.rel(manifest_path)


def _report(ws: Workspace, step: str, mode: Mode, root: Path, data: FolderImages, hits: list[Path],
            reasons: dict[Path, str], seconds: float, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "step": step, "folder": ws.rel(root), "mode": mode, "images_checked": len(data.images),
        "flagged": len(hits), "examples": _names(ws, root, hits[:MAX_EXAMPLES]),
        "unreadable_files": bounded([as_data(u, 160) for u in data.unreadable], MAX_EXAMPLES),
        "seconds": round(seconds, 2), **extra, "note": DATA_NOTE,
    }
    if mode == "remove" and hits:
        out["moved"] = len(hits)
        out["manifest"] = _move(ws, step, root, hits, reasons)
        out["images_left"] = len(data.images) - len(hits)
    return out


@blas_single_threaded()
def find_duplicates(ws: Workspace, folder: str, mode: Mode = "flag",
                    min_similarity: float = DUPLICATE_SIMILARITY) -> dict:
    """Find near-duplicate images (resized, re-encoded or slightly cropped copies) in an organised folder.

    Groups images whose perceptual fingerprints match and keeps one per group (the one at the
    folder's usual size and sharpest, i.e. the likely original). In large folders of alike images the
    similarity needed is raised above min_similarity to what distinct images there rarely reach by
    chance (reported as similarity_threshold). Use mode='remove' to move the
    extra copies to work/removed/duplicates/ (a manifest lists them; nothing is deleted).
    Run this first: duplicates would otherwise leak between training and test splits.
    """
    t0 = time.perf_counter()
    store = FingerprintStore()
    root, data = _open_folder(ws, folder, mode == "remove", fingerprints_of, "find_duplicates", keep=store.put)
    found = find_duplicate_groups(store.fingerprints(data.images), data.sizes,
                                  lambda i: read_image(data.paths[i]), min_similarity)
    hits, reasons = [], {}
    for g in found.groups:
        keep = data.paths[g[0]]
        for i in g[1:]:
            hits.append(data.paths[i])
            reasons[data.paths[i]] = f"near-duplicate of {ws.rel(keep)}"
    return _report(ws, "duplicates", mode, root, data, hits, reasons, time.perf_counter() - t0,
                   {"groups": len(found.groups), "similarity_threshold": round(found.threshold, 4)})


@blas_single_threaded()
def find_offtopic(ws: Workspace, folder: str, mode: Mode = "flag", z_threshold: float = OFFTOPIC_Z) -> dict:
    """Find images that do not belong to the folder's imaging modality (another modality, a photo of a form).

    Scores each image by how far its colour, hue, texture and layout features lie from its nearest
    neighbours in the folder, and flags the scores that stand apart from the folder's usual
    spread (above the largest gap in the highest scores, when a drop there is larger than the
    folder's ordinary tail allows, together with a tight group of alike images just below it;
    or robust z-score > z_threshold).
    Use mode='remove' to move them to work/removed/offtopic/.
    """
    t0 = time.perf_counter()
    root, data = _open_folder(ws, folder, mode == "remove", image_features, "find_offtopic", FEATURES)
    idx, scores = offtopic_indices_of(data.images, z_threshold)
    hits = [data.paths[i] for i in idx]
    reasons = {data.paths[i]: f"outlier score z={scores[i]:.1f}" for i in idx}
    extra = {"note_small": "fewer than 4 images: nothing can be called an outlier"} if len(data.images) < 4 else {}
    return _report(ws, "offtopic", mode, root, data, hits, reasons, time.perf_counter() - t0, extra)


@blas_single_threaded()
def find_label_errors(ws: Workspace, folder: str, mode: Mode = "flag", folds: int = 5,
                      min_margin: float = LABEL_MIN_MARGIN) -> dict:
    """Find images that are likely in the wrong class sub-folder (confident learning, cleanlab).

    Trains a small model on the folder's own images with k-fold cross-validation, so every
    image is judged by a model that never saw it, and reports images whose folder label the
    model confidently contradicts. The report gives that model's balanced accuracy against chance;
    when it is no better than chance nothing is flagged. Run duplicates and off-topic removal
    first. Use mode='remove' to move them to work/removed/label_errors/ (they are not relabelled).
    """
    t0 = time.perf_counter()
    root, data = _open_folder(ws, folder, mode == "remove", image_features, "find_label_errors", FEATURES)
    found = label_issues_of(data.images, data.labels, folds, min_margin=min_margin, max_fit=LABEL_FIT_MAX)
    hits = [data.paths[i] for i in found.indices]
    reasons = {data.paths[i]: f"label '{data.labels[i]}' contradicted by out-of-fold predictions"
               for i in found.indices}
    extra = {"classes": len(set(data.labels)),
             "classes_not_checked": bounded([as_data(c, 80) for c in found.classes_not_checked], MAX_EXAMPLES)}
    if found.balanced_accuracy is not None:
        extra["model_balanced_accuracy"] = round(found.balanced_accuracy, 3)
        extra["chance"] = round(found.chance, 3)
        if not found.trusted:
            extra["note_model"] = ("the model trained on this folder predicts its classes no better than "
                                   "chance, so it cannot tell a wrong label from a right one: nothing is flagged")
    return _report(ws, "label_errors", mode, root, data, hits, reasons, time.perf_counter() - t0, extra)


#: (function, argument schema) of each tool this module offers; tools.client binds them to a site.
TOOLS = [(find_duplicates, DuplicatesArgs), (find_offtopic, OfftopicArgs), (find_label_errors, LabelErrorArgs)]


def make_cleaning_tools(workspace: Workspace) -> list[BaseTool]:
    """The three C2 cleaning tools, bound to one site's workspace (the model never sees it)."""
    from tools.client import bind_all

    return bind_all(workspace, TOOLS)
