"""Reading a hospital dataset folder, whatever its layout, into (image file, native label) pairs.

Hospitals store labels in class folders, in a CSV or JSON file beside flat or nested images, or not
at all (segmentation exports). Column names and JSON shapes vary, so nothing here trusts a name
alone: the file column is the one whose values actually resolve to image files in the folder, and
the label column is found by name among the columns that do not identify a patient. Everything the
reader skips is kept with its reason so the tools can report it instead of losing it silently.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from langchain_core.tools import ToolException

from tools.imageio import is_image_name
from tools.privacy import as_data, is_identifier_column, looks_like_identifier

LABEL_WORDS = ("label", "diagnosis", "dx", "class", "finding", "category", "target", "grade", "outcome")
TABLE_SUFFIXES = (".csv", ".json")
MIN_MATCH = 0.5
MAX_LABELS_PER_TABLE = 1000  # more distinct values than this and a column is no class label


def stem_of(name: str) -> str:
    """File name without its image extension (``.nii.gz`` counts as one extension)."""
    low = name.lower()
    for ext in (".nii.gz",) + tuple(f".{e}" for e in ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "dcm", "nii")):
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def is_mask(rel: PurePosixPath) -> bool:
    """Segmentation masks: ``*_mask.*`` files or anything under a ``masks``/``mask`` folder."""
    return stem_of(rel.name).lower().endswith("_mask") or any(p.lower() in ("masks", "mask") for p in rel.parts[:-1])


@dataclass
class Inventory:
    """Every file of a dataset folder, sorted into what a classification dataset can use."""

    root: Path
    images: list[PurePosixPath] = field(default_factory=list)  # relative to root, masks excluded
    masks: list[PurePosixPath] = field(default_factory=list)
    tables: list[PurePosixPath] = field(default_factory=list)  # .csv / .json beside the images
    other: list[PurePosixPath] = field(default_factory=list)  # neither image nor table

    @classmethod
    def scan(cls, root: Path, walk: Callable[[Path], list[Path]]) -> Inventory:
        inv = cls(root)
        for path in walk(root):
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if rel.name.lower().endswith(TABLE_SUFFIXES):
                inv.tables.append(rel)
            elif not is_image_name(rel.name):
                inv.other.append(rel)
            elif is_mask(rel):
                inv.masks.append(rel)
            else:
                inv.images.append(rel)
        return inv


class FileIndex:
    """Finds the image a label-file reference means: by relative path, by name, or by stem."""

    def __init__(self, images: list[PurePosixPath]):
        self.by_suffix: dict[str, list[PurePosixPath]] = {}  # "a/b/c.png", "b/c.png", "c.png" -> image
        self.by_stem: dict[str, list[PurePosixPath]] = {}
        for p in images:
            for i in range(len(p.parts)):
                self.by_suffix.setdefault("/".join(p.parts[i:]), []).append(p)
            self.by_stem.setdefault(stem_of(p.name), []).append(p)

    def find(self, ref: str) -> PurePosixPath | None:
        """The one image ``ref`` names, or None when it names none or several."""
        ref = (ref or "").strip().replace("\\", "/")
        while ref.startswith("./"):
            ref = ref[2:]
        if not ref:
            return None
        for hits in (self.by_suffix.get(ref), self.by_stem.get(stem_of(ref.rsplit("/", 1)[-1]))):
            if hits and len(hits) == 1:
                return hits[0]
        return None


@dataclass
class LabelSource:
    """Where a dataset's labels come from and what they say."""

    kind: str  # "folders", "csv", "json", "none"
    table: PurePosixPath | None = None
    file_column: str | None = None
    label_column: str | None = None
    columns: list[str] = field(default_factory=list)
    labels: dict[PurePosixPath, str] = field(default_factory=dict)  # image -> native label
    missing_refs: list[str] = field(default_factory=list)  # referenced files that do not exist
    conflicts: list[PurePosixPath] = field(default_factory=list)  # one image given two labels
    n_rows: int = 0


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV or JSON label file as (columns, rows of text); JSON records are flattened with dots."""
    if path.name.lower().endswith(".csv"):
        with path.open(newline="", encoding="utf-8", errors="replace") as fh:
            reader = csv.DictReader(fh)
            rows = [{k: (v or "") for k, v in row.items() if k is not None} for row in reader]
            return list(reader.fieldnames or []), rows
    try:
        doc = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError:
        return [], []
    if isinstance(doc, dict) and doc and all(isinstance(v, (str, int, float)) for v in doc.values()):
        return ["key", "value"], [{"key": str(k), "value": str(v)} for k, v in doc.items()]
    records = doc if isinstance(doc, list) else next((v for v in doc.values() if isinstance(v, list)), []) \
        if isinstance(doc, dict) else []
    rows = [_flatten(r) for r in records if isinstance(r, dict)]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return columns, rows


def _flatten(record: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (str, int, float, bool)):
            out[key] = str(v)
    return out


def _is_label_name(column: str) -> bool:
    last = column.rsplit(".", 1)[-1].lower()
    return last in ("value",) or any(w == last or last.startswith(w) or last.endswith(w) for w in LABEL_WORDS)


def _can_be_label(column: str, rows: list[dict[str, str]], index: FileIndex) -> bool:
    """Whether a column's values could be class labels: not file paths, not identifiers, not one per row.

    Labels are echoed to the model as class names, so a column of paths (which may run through
    patient-numbered folders), of identifier-shaped values, or of near-unique values (an id or a
    free-text note) must never serve as one.
    """
    values = [r.get(column, "").strip() for r in rows]
    filled = [v for v in values if v]
    if not filled:
        return False
    if any(looks_like_identifier(v) for v in filled):
        return False
    if sum(index.find(v) is not None or is_image_name(v) for v in filled) > len(filled) / 10:
        return False
    distinct = len(set(filled))
    return distinct <= MAX_LABELS_PER_TABLE and not (len(filled) >= 8 and distinct > len(filled) * 0.8)


def _pick_file_column(columns: list[str], rows: list[dict[str, str]], index: FileIndex) -> tuple[str | None, float]:
    best, best_share = None, 0.0
    for col in columns:
        if is_identifier_column(col):
            continue
        values = [r.get(col, "") for r in rows]
        share = sum(index.find(v) is not None for v in values) / max(1, len(values))
        if share > best_share:
            best, best_share = col, share
    return best, best_share


def read_table(inv: Inventory, table: PurePosixPath, file_column: str | None = None,
               label_column: str | None = None) -> LabelSource:
    """Labels from one CSV/JSON file; columns are detected unless given.

    Raises:
        ToolException: a given column does not exist, or no label column can be found by name.
    """
    columns, rows = read_rows(inv.root / table)
    kind = "json" if table.name.lower().endswith(".json") else "csv"
    src = LabelSource(kind, table, columns=columns, n_rows=len(rows))
    if not rows:
        raise ToolException(f"the label file {as_data(table.name)} has no rows; this dataset has no usable labels. "
                            "Report it as unusable, or use another dataset.")
    index = FileIndex(inv.images)
    usable = [c for c in columns if not is_identifier_column(c)]
    for given, what in ((file_column, "file_column"), (label_column, "label_column")):
        if given is not None and is_identifier_column(given):
            raise ToolException(f"{what} {as_data(given, 80)} may identify patients and can never be read; "
                                f"choose one of {[as_data(c, 80) for c in usable]}")
        if given is not None and given not in columns:
            raise ToolException(f"{what} {as_data(given, 80)} is not a column of {as_data(table.name)}; "
                                f"its usable columns are {[as_data(c, 80) for c in usable]}")
    if file_column is None:
        file_column, share = _pick_file_column(columns, rows, index)
        if file_column is None or share < MIN_MATCH:
            raise ToolException(f"no column of {as_data(table.name)} names the image files in this folder; pass "
                                f"file_column= one of {[as_data(c, 80) for c in usable]}")
    candidates = [c for c in usable if c != file_column and _can_be_label(c, rows, index)]
    if label_column is None:
        named = [c for c in candidates if _is_label_name(c)]
        if not named:
            raise ToolException(f"{as_data(table.name)} has no column that looks like a label (label, diagnosis, "
                                f"class, ...); pass label_column= one of {[as_data(c, 80) for c in candidates]}")
        label_column = named[0]
    if label_column not in candidates:
        raise ToolException(f"label_column {as_data(label_column, 80)} cannot be a class label: it names the image "
                            "files, holds identifier-shaped values, or has a different value on almost every row. "
                            f"Choose one of {[as_data(c, 80) for c in candidates]}")
    src.file_column, src.label_column = file_column, label_column
    for row in rows:
        ref, label = row.get(file_column, ""), row.get(label_column, "").strip()
        hit = index.find(ref)
        if hit is None:
            src.missing_refs.append(ref.rsplit("/", 1)[-1])
        elif not label:
            continue
        elif hit in src.labels and src.labels[hit] != label:
            src.conflicts.append(hit)
        else:
            src.labels[hit] = label
    for hit in src.conflicts:
        src.labels.pop(hit, None)
    return src


def read_labels(inv: Inventory, file_column: str | None = None, label_column: str | None = None) -> LabelSource:
    """The dataset's labels from its best label file, else from class folders, else none."""
    tables = sorted(inv.tables, key=lambda t: (len(t.parts), t.name != "labels.csv", str(t)))
    if file_column or label_column:
        if not tables:
            raise ToolException("this folder has no CSV/JSON label file, so file_column/label_column do not apply; "
                                "call again without them")
        return read_table(inv, tables[0], file_column, label_column)
    errors: list[str] = []
    for table in tables:
        try:
            return read_table(inv, table)
        except ToolException as exc:
            errors.append(str(exc))
    folder_labels = {p: p.parts[-2] for p in inv.images if len(p.parts) >= 2}
    if folder_labels and not _looks_structural(folder_labels):
        return LabelSource("folders", labels=folder_labels, n_rows=len(folder_labels))
    if errors:
        raise ToolException(errors[0])
    return LabelSource("none")


def _looks_structural(folder_labels: dict[PurePosixPath, str]) -> bool:
    """Folders named like a plain image store, not classes (images/, volumes/), mean no labels."""
    names = {n.lower() for n in folder_labels.values()}
    return names <= {"images", "image", "imgs", "volumes", "data", "files", "series_1", "series_2"}


def layout_name(inv: Inventory, src: LabelSource) -> str:
    """A short name for the layout, for the model to read (not used for decisions)."""
    exts = {p.name[len(stem_of(p.name)):].lower() for p in inv.images}
    if src.kind == "folders":
        return "class_folders"
    if src.kind == "none":
        return "images_and_masks (no labels)" if inv.masks else ("no labels found" if inv.images else "no images")
    if ".dcm" in exts:
        return f"dicom series + {src.kind} labels"
    if ".nii.gz" in exts or ".nii" in exts:
        return f"nifti volumes + {src.kind} labels"
    deep = sum(len(p.parts) > 2 for p in src.labels) > len(src.labels) / 2
    return f"nested patient/study folders + {src.kind} labels" if deep else f"flat images + {src.kind} labels"
