"""Reading a hospital dataset folder, whatever its layout, into (image file, native label) pairs.

Hospitals store labels in class folders, in a CSV or JSON file beside flat or nested images, or not
at all (segmentation exports). Column names and JSON shapes vary, so nothing here trusts a name
alone: the file column is the one whose values actually resolve to image files in the folder, and
the label column is found by name among the columns that do not identify a patient (see
:mod:`tools.table_labels` and :mod:`tools.label_sources`). Everything the reader skips is kept with
its reason so the tools can report it instead of losing it silently.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tools.imageio import is_image_name
from tools.layout_junk import is_mask_path, litter_reason

LABEL_WORDS = ("label", "diagnosis", "dx", "class", "finding", "category", "target", "grade", "outcome")
TABLE_SUFFIXES = (".csv", ".tsv", ".json", ".xlsx")
MIN_MATCH = 0.5  # share of a column's values that must name image files for it to be the file column


def stem_of(name: str) -> str:
    """File name without its image extension (``.nii.gz`` counts as one extension)."""
    low = name.lower()
    for ext in (".nii.gz",) + tuple(f".{e}" for e in ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "dcm", "nii")):
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def is_mask(rel: PurePosixPath) -> bool:
    """Segmentation masks: ``*_mask.*``, ``*_mask_1.*``, ``*_seg*`` files or anything under a masks folder."""
    return is_mask_path(rel, stem_of(rel.name))


@dataclass
class Inventory:
    """Every file of a dataset folder, sorted into what a classification dataset can use."""

    root: Path
    images: list[PurePosixPath] = field(default_factory=list)  # relative to root, masks excluded
    masks: list[PurePosixPath] = field(default_factory=list)
    tables: list[PurePosixPath] = field(default_factory=list)  # .csv / .tsv / .xlsx / .json beside the images
    other: list[PurePosixPath] = field(default_factory=list)  # neither image nor table
    litter: dict[PurePosixPath, str] = field(default_factory=dict)  # OS/editor files -> 'macos', 'windows', ...

    @classmethod
    def scan(cls, root: Path, walk: Callable[[Path], list[Path]]) -> Inventory:
        inv = cls(root)
        for path in walk(root):
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if (why := litter_reason(rel)) is not None:
                inv.litter[rel] = why
            elif rel.name.lower().endswith(TABLE_SUFFIXES):
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
        self.by_lower_stem: dict[str, list[PurePosixPath]] = {}  # exports change case (IMG_1.JPG vs img_1)
        for p in images:
            for i in range(len(p.parts)):
                self.by_suffix.setdefault("/".join(p.parts[i:]), []).append(p)
            self.by_stem.setdefault(stem_of(p.name), []).append(p)
            self.by_lower_stem.setdefault(stem_of(p.name).lower(), []).append(p)

    def find(self, ref: str) -> PurePosixPath | None:
        """The one image ``ref`` names, or None when it names none or several."""
        ref = (ref or "").strip().replace("\\", "/")
        while ref.startswith("./"):
            ref = ref[2:]
        if not ref:
            return None
        stem = stem_of(ref.rsplit("/", 1)[-1])
        for hits in (self.by_suffix.get(ref), self.by_stem.get(stem), self.by_lower_stem.get(stem.lower())):
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
    """A CSV/TSV, XLSX or JSON label file as (columns, rows of text); JSON records are flattened with dots.

    CSV delimiters (comma, semicolon, tab) are sniffed; an XLSX file is read from its first sheet.
    A file that cannot be parsed reads as no rows (reported by the caller, never a crash).
    """
    low = path.name.lower()
    if low.endswith((".csv", ".tsv")):
        return _read_delimited(path, "\t" if low.endswith(".tsv") else None)
    if low.endswith(".xlsx"):
        return _read_xlsx(path)
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


def _read_delimited(path: Path, delimiter: str | None) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        text = fh.read()
    if delimiter is None:
        head = text[:4096]
        delimiter = max((",", ";", "\t"), key=lambda d: head.split("\n", 1)[0].count(d))
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    return [c.strip() for c in reader.fieldnames or []], rows


def _read_xlsx(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - a broken or foreign file is reported as having no rows
        return [], []
    try:
        cells = list(book.worksheets[0].iter_rows(values_only=True)) if book.worksheets else []
    finally:
        book.close()
    if not cells:
        return [], []
    columns = [str(c).strip() if c is not None else f"column_{i + 1}" for i, c in enumerate(cells[0])]

    def text(v: object) -> str:
        return "" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)).strip()

    return columns, [{c: text(v) for c, v in zip(columns, row)} for row in cells[1:] if any(v is not None for v in row)]


def _flatten(record: dict, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in record.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (str, int, float, bool)):
            out[key] = str(v)
    return out


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
