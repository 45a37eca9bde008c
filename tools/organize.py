"""C2 tools, part 1: detect a dataset's layout, organise it into class folders, normalise images.

``organize_dataset`` reads any supported layout under ``raw/`` and writes
``work/organized/<dataset>/<label>/<stem>.png``. Every image is decoded on the way (DICOM and NIfTI
through :func:`tools.imageio.read_image`, which takes a NIfTI volume's middle axial slice), so a file
that cannot be decoded never reaches training. What is skipped is reported with counts, a few quoted
file names and the reason; nothing is dropped silently. ``raw/`` is only read.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import ToolException
from PIL import Image
from pydantic import BaseModel, Field, field_validator

from tools.imageio import UnreadableImage, is_image_name, read_image
from tools.label_sources import detect
from tools.layout_readers import Inventory, stem_of
from tools.layout_report import explain, junk_counts, layout_of, refuse
from tools.privacy import DATA_NOTE, as_data, bounded, unquote
from tools.sandbox import MAX_COMPONENT_CHARS, UNSAFE_CATEGORIES, SandboxError, Workspace, safe_component

ORGANIZED = "organized"
SLICE_NOTE = ("DICOM: pixel array min-max scaled to 8 bit; NIfTI: the middle axial slice (the slice the "
              "labels refer to), min-max scaled; every image saved as PNG under its original file stem")
EXAMPLES = 5


def dataset_dir(ws: Workspace, folder: str) -> Path:
    """A dataset folder under ``raw/`` (the only place organise reads from)."""
    path = ws.resolve(folder)
    if not path.is_dir() or ws.raw not in path.parents:
        raise SandboxError(f"{as_data(folder, 120)} is not a dataset folder under 'raw/'; pass the folder a data "
                           "card names, such as 'raw/<dataset>'")
    return path


def safe_label_dir(label: str) -> str:
    """The site's label as a folder name: unchanged unless it cannot be one.

    Labels come from the data (CSV cells, JSON values), not from the model, so a label that cannot be
    a folder name is made into one (separators, control characters and '..' become '_', an overlong
    name is cut) rather than refused; the sandbox checks the result again when the folder is made.
    """
    name = "".join("_" if ch in "/\\" or unicodedata.category(ch) in UNSAFE_CATEGORIES else ch
                   for ch in label).replace("..", "__").strip()
    name = name[:MAX_COMPONENT_CHARS].strip()
    return name if name and not name.startswith(".") else f"label_{name.strip('.') or 'empty'}"


def _skipped(names: list[str], reason: str) -> dict[str, Any]:
    return {"count": len(names), "reason": reason, "examples": [as_data(n, 120) for n in names[:EXAMPLES]]}


def detect_layout(ws: Workspace, folder: str, label_level: int | None = None, label_table: str | None = None,
                  label_column: str | None = None, one_hot_columns: list[str] | None = None,
                  file_column: str | None = None) -> dict[str, Any]:
    """Detect how a dataset folder under raw/ is laid out and where its labels come from.

    Looks at every label source: class folders at any depth (each folder level is listed with its
    names and counts; split folders train/val/test are merged and counted), CSV/TSV/XLSX/JSON tables
    with a label column or one-hot columns (each table listed with its coverage), DICOM, NIfTI, masks.
    OS/editor litter (__MACOSX, ._*, .DS_Store, Thumbs.db) is counted and ignored. 'ambiguities' lists
    every choice you must make before organize_dataset will run, with the argument that settles it;
    pass the same arguments here to preview a choice. Returns counts and names only.
    """
    root = dataset_dir(ws, folder)
    inv = Inventory.scan(root, ws.walk_files)
    det = detect(inv, label_level=label_level, label_table=label_table, label_column=label_column,
                 one_hot_columns=one_hot_columns, file_column=file_column)
    return {
        "folder": ws.rel(root), "layout": layout_of(inv, det), **explain(det),
        "n_images": len(inv.images), "n_labelled": len(det.source.labels), "n_masks": len(inv.masks),
        "n_other_files": len(inv.other), "n_label_files": len(inv.tables), "os_and_editor_litter": junk_counts(inv),
        "note": DATA_NOTE,
    }


def organize_dataset(ws: Workspace, folder: str, label_column: str | None = None,
                     file_column: str | None = None, label_level: int | None = None, label_table: str | None = None,
                     one_hot_columns: list[str] | None = None, skip_multi_label: bool = False) -> dict[str, Any]:
    """Organise one raw/ dataset into work/organized/<dataset>/<label>/<file>.png, whatever its layout.

    DICOM and NIfTI are converted to PNG (NIfTI: the middle slice). Non-image files, OS litter,
    masks, unreadable images, labels for missing files and unlabelled images are skipped and
    reported; split folders (train/val/test) are merged and their counts reported. Re-running
    replaces the previous output. Label folders keep the site's label names exactly. When the label
    source is ambiguous it refuses and says which argument (label_level, label_table, label_column,
    one_hot_columns, skip_multi_label) settles it; detect_layout shows the same choices first.
    """
    root = dataset_dir(ws, folder)
    inv = Inventory.scan(root, ws.walk_files)
    det = detect(inv, label_level=label_level, label_table=label_table, label_column=label_column,
                 one_hot_columns=one_hot_columns, file_column=file_column, skip_multi_label=skip_multi_label)
    src = det.source
    if not src.labels:
        tables = "; ".join(f"{t['table']}: {t.get('why', 'no labels')}" for t in det.tables if not t.get("used"))
        raise ToolException(f"{ws.rel(root)} has no labels (no class folders, no usable label table"
                            f"{', masks beside the images: a segmentation set' if inv.masks else ''}"
                            f"{'; tables seen: ' + tables if tables else ''}); it cannot be used for "
                            "classification. Report it as unusable, or name the source with label_level= / "
                            "label_table= and label_column= if detect_layout shows one.")
    refuse(det, ws.rel(root))
    out = ws.work / ORGANIZED / safe_component(root.name, "dataset folder")
    tmp = out.with_name(out.name + ".partial")
    ws.writable(out)
    ws.remove_tree(tmp)
    ws.make_dir(tmp)
    counts: Counter[str] = Counter()
    unreadable: list[str] = []
    renamed = 0
    used: set[tuple[str, str]] = set()
    for rel, label in sorted(src.labels.items()):
        try:
            img = read_image(root / rel)
        except UnreadableImage:
            unreadable.append(rel.name)
            continue
        label_dir, stem = safe_label_dir(label), stem_of(rel.name)
        name = stem
        while (label_dir, name) in used:
            renamed += 1
            name = f"{stem}_{renamed}"
        used.add((label_dir, name))
        ws.make_dir(tmp / label_dir)
        ws.save_image(img, tmp / label_dir / f"{name}.png", compress_level=1)
        counts[label] += 1
    ws.replace_dir(tmp, out)
    used_tables = {src.table, *det.merged_tables} if src.table else set()
    multi = set(det.option.multi_label) if det.option else set()
    unlabelled = [p.name for p in inv.images if p not in src.labels and p not in src.conflicts and p not in multi]
    splits = Counter(det.split_of.get(p, "none") for p in src.labels if p.name not in unreadable)
    return {
        "output": ws.rel(out),
        "layout": layout_of(inv, det),
        "label_source": src.kind,
        "label_column": as_data(src.label_column, 200) if src.label_column else None,
        "label_level": det.chosen_level,
        "splits_merged": dict(sorted(splits.items())) if det.split_of else {},
        "written": sum(counts.values()),
        "per_label": {as_data(k, 80): v for k, v in sorted(counts.items())},
        "conversion": SLICE_NOTE,
        "renamed_on_name_clash": renamed,
        "skipped": {
            "non_image_files": _skipped([p.name for p in inv.other] + [p.name for p in inv.tables
                                                                       if p not in used_tables],
                                        "not an image file (text, spreadsheet, system file)"),
            "os_and_editor_litter": _skipped([p.name for p in inv.litter], "operating-system or editor litter "
                                             "(__MACOSX, ._*, .DS_Store, Thumbs.db, desktop.ini), never data"),
            "masks": _skipped([p.name for p in inv.masks], "segmentation mask, not a training image"),
            "multi_label_rows": _skipped([p.name for p in sorted(multi)], "more than one one-hot label: "
                                         "skipped for a single-label task"),
            "unreadable_images": _skipped(unreadable, "has an image name but cannot be decoded (corrupt/empty)"),
            "labels_for_missing_files": _skipped(src.missing_refs, "the label file names a file that is not there"),
            "images_without_label": _skipped(unlabelled, "no label given for this image"),
            "images_with_conflicting_labels": _skipped([p.name for p in src.conflicts],
                                                       "the label file gives this image two different labels"),
        },
        "note": DATA_NOTE,
    }


def resize_images(ws: Workspace, folder: str, size: int, channels: Literal["L", "RGB"]) -> dict[str, Any]:
    """Resize every image under a work/ folder to size x size pixels and one channel mode, in place.

    channels: 'L' (grayscale) or 'RGB'. Reports the sizes and modes found before.
    """
    root = ws.resolve(folder, write=True)
    if not root.is_dir():
        raise SandboxError(f"{as_data(folder, 120)} is not a folder; pass e.g. 'work/organized/<dataset>'")
    sizes: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    changed, unreadable = 0, []
    for path in ws.walk_files(root):
        if not is_image_name(path.name):
            continue
        if path.is_symlink():  # a link planted among the images: never written through
            unreadable.append(path.name)
            continue
        try:
            with Image.open(path) as im:
                im.load()
                sizes[f"{im.width}x{im.height}"] += 1
                modes[im.mode] += 1
                if im.size == (size, size) and im.mode == channels:
                    continue
                new = im.convert(channels).resize((size, size), Image.BILINEAR)
        except Exception:  # noqa: BLE001 - PIL raises many types for bad files; report, never crash
            unreadable.append(path.name)
            continue
        ws.save_image(new, path, im.format or "PNG")
        changed += 1
    return {
        "folder": ws.rel(root), "size": size, "channels": channels, "changed": changed,
        "unchanged": sum(sizes.values()) - changed,
        "sizes_before": bounded(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "modes_before": dict(modes),
        "unreadable": _skipped(unreadable, "cannot be decoded, or is a link; left as it was"),
    }


class FolderArgs(BaseModel):
    folder: str = Field(description="dataset folder relative to the site, as the data card names it: 'raw/<dataset>'")


class ChoiceArgs(FolderArgs):
    label_level: int | None = Field(None, ge=0, le=32, description="class folders: the folder level holding the "
                                    "classes (0 = top, split folders not counted), as detect_layout lists them")
    label_table: str | None = Field(None, description="label table to use (path inside the dataset folder), "
                                                      "when several are present")
    label_column: str | None = Field(None, description="label column of the label table; leave empty to "
                                                       "auto-detect (give it when detection asks you to choose)")
    one_hot_columns: list[str] | None = Field(None, description="the 0/1 columns, one per class, when the table "
                                                                "gives labels in one-hot form")
    file_column: str | None = Field(None, description="column naming the image files; leave empty to auto-detect")

    @field_validator("label_column", "file_column", "label_table")
    @classmethod
    def _unquote_column(cls, value: str | None) -> str | None:
        return unquote(value) if value is not None else None

    @field_validator("one_hot_columns")
    @classmethod
    def _unquote_columns(cls, value: list[str] | None) -> list[str] | None:
        return [unquote(v) for v in value] if value is not None else None


class OrganizeArgs(ChoiceArgs):
    skip_multi_label: bool = Field(False, description="organise only the rows with exactly one one-hot label "
                                                      "(rows with several are skipped and counted)")


class ResizeArgs(BaseModel):
    folder: str = Field(description="folder under 'work/' to normalise, e.g. 'work/organized/<dataset>'")
    size: int = Field(224, ge=16, le=1024, description="output side in pixels (square)")
    channels: Literal["L", "RGB"] = Field("RGB", description="'L' for grayscale modalities, 'RGB' for colour")


#: (function, argument schema) of each tool this module offers; tools.client binds them to a site.
TOOLS = [(detect_layout, ChoiceArgs), (organize_dataset, OrganizeArgs), (resize_images, ResizeArgs)]
