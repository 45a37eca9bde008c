"""Labels from a table with one row per image: a label column, or one-hot / multi-hot columns.

Challenge ground truths often give one 0/1 column per class (ISIC: ``image,MEL,NV,BCC,...`` with
``1.0``/``0.0`` and an image column without extension). A row summing to 1 names one label; a row
summing to 0 names none; a row summing to more than 1 is multi-label, which a single-label
classification task cannot use. Label columns are found by name (exact words first); two equally
good columns that group the images differently are reported as a choice, never picked silently.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from langchain_core.tools import ToolException

from tools.imageio import is_image_name
from tools.layout_readers import LABEL_WORDS, MIN_MATCH, FileIndex, Inventory, read_rows
from tools.privacy import as_data, is_identifier_column, looks_like_identifier

ONE_HOT_VALUES = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0, "": 0}
FILE_WORDS = re.compile(r"(image|img|file|path|picture|photo)", re.IGNORECASE)
MAX_LABELS_PER_TABLE = 1000  # more distinct values than this and a column is no class label
ID_SHARE = 0.5  # a label column with distinct values for more than half its rows (and > 10) holds ids


@dataclass
class TableOption:
    """One way to read labels from a table: a single column, or a group of one-hot columns."""

    table: PurePosixPath
    file_column: str
    label_column: str | None = None
    one_hot: list[str] = field(default_factory=list)
    rank: int = 0  # 2: column named exactly like a label, 1: name contains a label word, 3: one-hot
    labels: dict[PurePosixPath, str] = field(default_factory=dict)
    missing_refs: list[str] = field(default_factory=list)
    conflicts: list[PurePosixPath] = field(default_factory=list)
    rows_without_label: int = 0  # one-hot rows summing to 0 (or empty label cells)
    multi_label: list[PurePosixPath] = field(default_factory=list)  # one-hot rows summing to > 1
    n_rows: int = 0
    distinct_values: int = 0

    @property
    def name(self) -> str:
        return f"one-hot columns {','.join(self.one_hot)}" if self.one_hot else f"column {self.label_column}"

    def looks_like_ids(self) -> bool:
        return not self.one_hot and self.distinct_values > 10 and self.distinct_values > ID_SHARE * self.n_rows


def _word_rank(column: str) -> int:
    last = column.rsplit(".", 1)[-1].lower().strip()
    words = [w for w in last.replace("-", "_").replace(" ", "_").split("_") if w]
    if last in LABEL_WORDS or last == "value" or (words and words[-1] in LABEL_WORDS and len(words) <= 2
                                                   and words[0] not in ("dx", "label")):
        return 2
    return 1 if any(w == last or last.startswith(w) or last.endswith(w) for w in LABEL_WORDS) else 0


def _pick_file_column(columns: list[str], rows: list[dict[str, str]], index: FileIndex) -> tuple[str | None, float]:
    best, best_share = None, 0.0
    for col in columns:
        if is_identifier_column(col) and not FILE_WORDS.search(col):  # "Image name" names files, not patients
            continue
        values = [r.get(col, "") for r in rows]
        share = sum(index.find(v) is not None for v in values) / max(1, len(values))
        if share > best_share:
            best, best_share = col, share
    return best, best_share


def can_be_label(column: str, rows: list[dict[str, str]], index: FileIndex) -> bool:
    """Whether a column's values could be class labels: not file paths, not identifiers, not one per row.

    Labels are echoed to the model as class names, so a column of paths (which may run through
    patient-numbered folders), of identifier-shaped values, or of near-unique values (an id or a
    free-text note) must never serve as one.
    """
    filled = [v for v in (r.get(column, "").strip() for r in rows) if v]
    if not filled or any(looks_like_identifier(v) for v in filled):
        return False
    if sum(index.find(v) is not None or is_image_name(v) for v in filled) > len(filled) / 10:
        return False
    distinct = len(set(filled))
    return distinct <= MAX_LABELS_PER_TABLE and not (len(filled) >= 8 and distinct > len(filled) * 0.8)


def _one_hot_columns(columns: list[str], rows: list[dict[str, str]], skip: set[str]) -> list[str]:
    group = []
    for col in columns:
        if col in skip or is_identifier_column(col):
            continue
        values = {r.get(col, "").strip().lower() for r in rows}
        if values <= set(ONE_HOT_VALUES) and values - {""}:
            group.append(col)
    if len(group) < 2:
        return []
    hot = sum(any(ONE_HOT_VALUES.get(r.get(c, "").strip().lower(), 0) == 1 for c in group) for r in rows)
    return group if hot >= 0.5 * len(rows) else []  # mostly-empty 0/1 columns are flags, not classes


def read_option(rows: list[dict[str, str]], opt: TableOption, index: FileIndex) -> TableOption:
    """Fill ``opt``'s labels from the rows (one-hot rows: the column holding the 1)."""
    opt.n_rows = len(rows)
    values: Counter[str] = Counter()
    for row in rows:
        hit = index.find(row.get(opt.file_column, ""))
        if hit is None:
            opt.missing_refs.append(row.get(opt.file_column, "").replace("\\", "/").rsplit("/", 1)[-1])
            continue
        if opt.one_hot:
            on = [c for c in opt.one_hot if ONE_HOT_VALUES.get(row.get(c, "").strip().lower(), 0) == 1]
            if len(on) > 1:
                opt.multi_label.append(hit)
                continue
            label = on[0] if on else ""
        else:
            label = row.get(opt.label_column or "", "").strip()
        if not label:
            opt.rows_without_label += 1
            continue
        values[label] += 1
        if hit in opt.labels and opt.labels[hit] != label:
            opt.conflicts.append(hit)
        else:
            opt.labels[hit] = label
    for hit in opt.conflicts:
        opt.labels.pop(hit, None)
    opt.distinct_values = len(values)
    return opt


def table_options(inv: Inventory, table: PurePosixPath, index: FileIndex, file_column: str | None = None,
                  label_column: str | None = None, one_hot: list[str] | None = None
                  ) -> tuple[list[str], list[TableOption], str | None]:
    """Every plausible label reading of one table, best first, and why there is none if so.

    Returns (columns, options, problem). Given columns are used as given (the caller checked them).
    """
    columns, rows = read_rows(inv.root / table)
    if not rows:
        return columns, [], "no rows"
    named = [c for c in [file_column, label_column, *(one_hot or [])] if c is not None]
    if missing := [c for c in named if c not in columns]:
        return columns, [], f"has no column {', '.join(missing)}; its columns are {', '.join(columns)}"
    if file_column is None:
        file_column, share = _pick_file_column(columns, rows, index)
        if file_column is None or share < MIN_MATCH:
            return columns, [], "no column names the image files in this folder"
    candidates = [c for c in columns if c != file_column and not is_identifier_column(c)
                  and can_be_label(c, rows, index)]
    if one_hot:
        return columns, [read_option(rows, TableOption(table, file_column, one_hot=list(one_hot), rank=3), index)], None
    if label_column:
        if label_column not in candidates:
            raise ToolException(f"label_column {as_data(label_column, 80)} cannot be a class label: it names the "
                                "image files, holds identifier-shaped values, or has a different value on almost "
                                f"every row. Choose one of {[as_data(c, 80) for c in candidates]}")
        return columns, [read_option(rows, TableOption(table, file_column, label_column, rank=2), index)], None
    options = []
    group = _one_hot_columns(columns, rows, {file_column})
    if group:
        options.append(read_option(rows, TableOption(table, file_column, one_hot=group, rank=3), index))
    for col in columns:
        if col not in candidates or col in group or not (rank := _word_rank(col)):
            continue
        opt = read_option(rows, TableOption(table, file_column, col, rank=rank), index)
        if opt.distinct_values >= 1:
            options.append(opt)
    options.sort(key=lambda o: -o.rank)
    if not options:
        return columns, [], ("has no column that looks like a label (label, diagnosis, class, ...) and no one-hot "
                             f"columns; pass label_column= one of {[as_data(c, 80) for c in candidates]}")
    return columns, options, None


def same_grouping(a: TableOption, b: TableOption) -> bool:
    """Whether two readings put the same images together (one's labels are a renaming of the other's)."""
    shared = a.labels.keys() & b.labels.keys()
    fwd: dict[str, str] = {}
    back: dict[str, str] = {}
    for k in shared:
        x, y = a.labels[k], b.labels[k]
        if fwd.setdefault(x, y) != y or back.setdefault(y, x) != x:
            return False
    return bool(shared)
