"""Where a dataset's labels come from, decided from what is on disk and never silently.

:func:`detect` weighs every label source a real dataset uses (label tables with a label column or
one-hot columns, several tables, class folders at any depth, split folders) and returns the one it
proposes together with the alternatives and every **ambiguity** it found. An ambiguity is a case
where a wrong guess would mislabel images without any error later: two plausible label levels or
columns, label values that look like ids, one class only, one "class" holding more than 90% of the
images, multi-label rows. ``organize_dataset`` refuses while any is open; each one says which
argument settles it, so the agent can name the choice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from langchain_core.tools import ToolException

from tools.folder_levels import FolderTree
from tools.layout_readers import FileIndex, Inventory, LabelSource
from tools.privacy import as_data, is_identifier_column
from tools.table_labels import FILE_WORDS, TableOption, same_grouping, table_options

DOMINANT = 0.9  # a 'class' holding more than this share of the labelled images is suspicious
SHOWN = 8


@dataclass
class Ambiguity:
    """A choice the agent must name before organising: what was seen and which argument settles it."""

    kind: str  # label_level | label_column | label_table | label_source | id_like_labels | one_class |
    #            dominant_class | multi_label
    seen: str
    settle: str
    options: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "seen": self.seen, "how_to_choose": self.settle, "options": self.options}


@dataclass
class Detection:
    """The proposed label source, the alternatives considered, and the open ambiguities."""

    source: LabelSource
    tree: FolderTree
    ambiguities: list[Ambiguity] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)  # every table looked at and what became of it
    option: TableOption | None = None
    merged_tables: list[PurePosixPath] = field(default_factory=list)
    chosen_level: int | None = None

    @property
    def split_of(self) -> dict[PurePosixPath, str]:
        return self.tree.split


def _counts(labels: dict[PurePosixPath, str]) -> dict[str, int]:
    top = Counter(labels.values()).most_common(SHOWN)
    return {as_data(k, 60): v for k, v in top}


def _table_opt_dict(o: TableOption) -> dict[str, Any]:
    args: dict[str, Any] = {"label_table": str(o.table)}
    if o.one_hot:
        args["one_hot_columns"] = list(o.one_hot)
    else:
        args["label_column"] = o.label_column
    return {"arguments": {k: (as_data(v, 120) if isinstance(v, str) else [as_data(x, 60) for x in v])
                          for k, v in args.items()},
            "labels": _counts(o.labels), "n_labels": o.distinct_values, "n_labelled": len(o.labels)}


def _level_opt(tree: FolderTree, index: int) -> dict[str, Any]:
    labels = tree.labels_at(index)
    return {"arguments": {"label_level": index}, "labels": _counts(labels),
            "n_labels": len(set(labels.values())), "n_labelled": len(labels)}


def _from_option(o: TableOption) -> LabelSource:
    suffix = o.table.suffix.lower().lstrip(".")
    kind = ("one-hot " if o.one_hot else "") + ("csv" if suffix == "tsv" else suffix)
    return LabelSource(kind, o.table, o.file_column, o.label_column or ",".join(o.one_hot), labels=dict(o.labels),
                       missing_refs=list(o.missing_refs), conflicts=list(o.conflicts), n_rows=o.n_rows)


def _best_tables(inv: Inventory, index: FileIndex, det: Detection, label_table: str | None,
                 label_column: str | None, one_hot: list[str] | None, file_column: str | None
                 ) -> list[TableOption]:
    """Each usable table's best reading, best coverage first; every table gets a line in det.tables."""
    for given in [label_column, *(one_hot or [])]:
        if given is not None and is_identifier_column(given):
            raise ToolException(f"column {as_data(given, 80)} may identify patients and cannot be used as a label; "
                                "choose another column")
    if file_column is not None and is_identifier_column(file_column) and not FILE_WORDS.search(file_column):
        raise ToolException(f"file_column {as_data(file_column, 80)} may identify patients and can never be read; "
                            "choose the column that names the image files")
    tables = [t for t in inv.tables if label_table is None or str(t) == label_table or t.name == label_table]
    if label_table is not None and not tables:
        raise ToolException(f"label_table {as_data(label_table, 120)} is not a table of this dataset; its tables are "
                            f"{[as_data(str(t), 120) for t in inv.tables]}")
    best: list[tuple[TableOption, list[TableOption]]] = []
    for table in sorted(tables, key=lambda t: (len(t.parts), str(t))):
        if is_template(table) and label_table is None:
            det.tables.append({"table": as_data(str(table), 120), "used": False,
                               "why": "an answer template (sample/submission file), not labels"})
            continue
        _cols, opts, problem = table_options(inv, table, index, file_column, label_column, one_hot)
        if problem:
            det.tables.append({"table": as_data(str(table), 120), "used": False, "why": problem})
            continue
        best.append((opts[0], opts))
    if not best and (label_column or one_hot or file_column):
        raise ToolException("; ".join(f"{t['table']} {t['why']}" for t in det.tables)
                            + ". Call again with columns the table has.")
    n = max(1, len(inv.images))  # coverage first (in steps of 5%), then how surely the columns name a label
    best.sort(key=lambda pair: (-round(len(pair[0].labels) / n * 20), -pair[0].rank))
    for first, opts in best:
        det.tables.append({"table": as_data(str(first.table), 120), "used": False,
                           "coverage": round(len(first.labels) / max(1, len(inv.images)), 3),
                           "reading": as_data(first.name, 200),
                           "other_readings": [as_data(o.name, 200) for o in opts[1:SHOWN]]})
        rival_rank = 2 if first.rank == 3 else first.rank  # one-hot columns vs a column named like a label
        tied = [o for o in opts[1:] if o.rank >= rival_rank and not same_grouping(first, o)]
        if tied and not (label_column or one_hot):
            det.ambiguities.append(Ambiguity(
                "label_column", f"{as_data(first.table.name)} has {len(tied) + 1} columns that could each be "
                "the label and group the images differently",
                "call again with label_column= (or one_hot_columns=) naming the diagnosis you train on",
                [_table_opt_dict(o) for o in [first, *tied]]))
    return [first for first, _ in best]


def _merge_tables(chosen: TableOption, others: list[TableOption], det: Detection) -> None:
    """Tables with the same reading (train + validation ground truths) label disjoint images: merged."""
    for other in others:
        if (other.label_column, other.one_hot) != (chosen.label_column, chosen.one_hot):
            continue
        if other.distinct_values < 2 or is_template(other.table):  # a submission template's constant column
            continue
        clash = [k for k in other.labels.keys() & chosen.labels.keys() if other.labels[k] != chosen.labels[k]]
        new = {k: v for k, v in other.labels.items() if k not in chosen.labels}
        if clash or not new:
            continue
        chosen.labels.update(new)
        chosen.multi_label += other.multi_label
        chosen.rows_without_label += other.rows_without_label
        chosen.missing_refs = [r for r in chosen.missing_refs if r not in {k.name for k in new}]
        chosen.n_rows += other.n_rows
        det.merged_tables.append(other.table)


def is_template(table: PurePosixPath) -> bool:
    """Challenge downloads ship answer templates (sample_submission.csv) whose label cells are placeholders."""
    low = table.name.lower()
    return "submission" in low or low.startswith("sample")


def detect(inv: Inventory, *, label_level: int | None = None, label_table: str | None = None,
           label_column: str | None = None, one_hot_columns: list[str] | None = None,
           file_column: str | None = None, skip_multi_label: bool = False) -> Detection:
    """Propose the dataset's label source; every argument given is the agent's named choice."""
    tree = FolderTree.of(inv.images)
    det = Detection(LabelSource("none"), tree)
    if label_level is not None:
        return _with_level(det, tree, label_level)
    index = FileIndex(inv.images)
    table_choice = bool(label_table or label_column or one_hot_columns or file_column)
    ranked = _best_tables(inv, index, det, label_table, label_column, one_hot_columns, file_column)
    usable = [o for o in ranked if o.labels or o.multi_label]
    levels = tree.plausible()
    if usable and levels and not table_choice and len(usable[0].labels) < 0.5 * len(inv.images):
        for t in det.tables:
            t.setdefault("why", "labels fewer than half of the images; the class folders label more")
        usable = []
    if usable:
        chosen = usable[0]
        det.option = chosen
        _merge_tables(chosen, usable[1:], det)
        for t in det.tables:
            if t.get("table") == as_data(str(chosen.table), 120) or any(
                    t.get("table") == as_data(str(m), 120) for m in det.merged_tables):
                t["used"] = True
        det.source = _from_option(chosen)
        rivals = [o for o in usable[1:] if o.table not in det.merged_tables and o.rank >= chosen.rank
                  and len(o.labels) >= 0.5 * len(chosen.labels) and not same_grouping(chosen, o)]
        if rivals and not table_choice:
            det.ambiguities.append(Ambiguity(
                "label_table", f"{len(rivals) + 1} label tables cover these images and group them differently",
                "call again with label_table= naming the table (and label_column=) to use",
                [_table_opt_dict(o) for o in [chosen, *rivals]]))
        if levels and not table_choice and chosen.rank < 2 and not _agrees(det.source.labels, tree.labels_at(levels[0].index)):
            det.ambiguities.append(Ambiguity(
                "label_source", "both a label table and class folders label these images, and they disagree",
                "call again with label_table=/label_column= to use the table, or label_level= for the folders",
                [_table_opt_dict(chosen), _level_opt(tree, levels[0].index)]))
        if chosen.multi_label and not skip_multi_label:
            det.ambiguities.append(Ambiguity(
                "multi_label", f"{len(chosen.multi_label)} of {chosen.n_rows} rows have more than one one-hot column "
                "set: multi-label data, which a single-label classification task cannot use as it is",
                "report the dataset as multi-label (unusable for this task), or call again with "
                "skip_multi_label=true to organise only the rows with exactly one label"))
        if chosen.looks_like_ids() and not label_column:
            det.ambiguities.append(Ambiguity(
                "id_like_labels", f"column {as_data(chosen.label_column)} has {chosen.distinct_values} different "
                f"values over {chosen.n_rows} rows: they look like ids or free text, not classes",
                "call again with label_column= naming the real label column (or this one, if it truly is)",
                [_table_opt_dict(chosen)]))
    elif levels:
        det.chosen_level = levels[0].index
        det.source = LabelSource("folders", labels=tree.labels_at(levels[0].index), n_rows=len(inv.images))
        if len(levels) > 1:
            det.ambiguities.append(Ambiguity(
                "label_level", f"{len(levels)} folder levels could each be the class: "
                + "; ".join(f"level {lv.index}: {len(lv.names)} names" for lv in levels),
                "call again with label_level= the level whose folders are the diagnosis you train on "
                "(0 = top; split folders train/val/test are not counted)",
                [_level_opt(tree, lv.index) for lv in levels]))
    elif (single := tree.single_class()) is not None:
        det.chosen_level = single.index
        det.source = LabelSource("folders", labels=tree.labels_at(single.index), n_rows=len(inv.images))
    _check_classes(det, table_choice)
    return det


def _with_level(det: Detection, tree: FolderTree, level: int) -> Detection:
    depth = len(tree.levels)
    if not 0 <= level < depth:
        det.ambiguities.append(Ambiguity("label_level", f"label_level {level} does not exist: this tree has "
                                         f"{depth} folder level(s) below the split folders",
                                         f"call again with label_level between 0 and {max(0, depth - 1)}",
                                         [_level_opt(tree, lv.index) for lv in tree.levels
                                          if lv.status not in ("ids", "below_ids")]))
        return det
    if tree.levels[level].status == "ids":
        raise ToolException(f"folder level {level} holds names that look like patient, study or slide ids; they "
                            "cannot be labels (and are not shown). Choose a level detect_layout lists as plausible.")
    det.chosen_level = level
    det.source = LabelSource("folders", labels=tree.labels_at(level), n_rows=len(tree.parts))
    return det


def _agrees(a: dict[PurePosixPath, str], b: dict[PurePosixPath, str]) -> bool:
    fwd: dict[str, str] = {}
    for k in a.keys() & b.keys():
        if fwd.setdefault(a[k], b[k]) != b[k]:
            return False
    return True


def _check_classes(det: Detection, named: bool) -> None:
    """One class only, or one class with more than 90% of the images: the agent must confirm."""
    labels = det.source.labels
    if not labels or named:
        return
    counts = Counter(labels.values())
    top, n = counts.most_common(1)[0]
    settle = ("call again naming the source explicitly (label_level= for folders, label_column= for a table) "
              "to confirm it, or report the dataset as unusable")
    if len(counts) == 1:
        det.ambiguities.append(Ambiguity(
            "one_class", f"every labelled image ({n}) gets the same label {as_data(top, 60)}: a classifier "
            "cannot learn from one class, and a folder or file name may have been taken for a label", settle,
            _alternatives(det)))
    elif n > DOMINANT * len(labels):
        det.ambiguities.append(Ambiguity(
            "dominant_class", f"{as_data(top, 60)} holds {n} of {len(labels)} labelled images "
            f"({n / len(labels):.0%}): it may be a plain image folder rather than a class", settle,
            _alternatives(det)))


def _alternatives(det: Detection) -> list[dict[str, Any]]:
    opts = [_level_opt(det.tree, lv.index) for lv in det.tree.levels if lv.status in ("plausible", "wrapper")]
    if det.option is not None:
        opts.insert(0, _table_opt_dict(det.option))
    return opts[:SHOWN]
