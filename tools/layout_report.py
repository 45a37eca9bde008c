"""What ``detect_layout`` and ``organize_dataset`` say about a detection: layout, sources, junk, refusals.

Counts and names only (quoted as data). A refusal is written for a model to act on: what was seen,
the options with their label counts, and the exact call that settles each ambiguity.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from langchain_core.tools import ToolException

from tools.label_sources import Detection
from tools.layout_readers import Inventory, layout_name
from tools.privacy import as_data

EXAMPLES = 5


def layout_of(inv: Inventory, det: Detection) -> str:
    """A short name for the layout, for the model to read (not used for decisions)."""
    src = det.source
    if src.kind == "folders":
        base = "class_folders" if det.chosen_level in (None, 0) else f"class_folders at level {det.chosen_level}"
        if any(lv.status in ("ids", "below_ids") for lv in det.tree.levels):
            base += " (with patient/id and deeper folders below the class)"
    elif src.kind.startswith("one-hot"):
        base = f"images + {src.kind} labels (one column per class)"
    else:
        base = layout_name(inv, src)
    splits = det.tree.split_counts()
    return base + (f", split folders {'/'.join(splits)} merged" if splits else "")


def junk_counts(inv: Inventory) -> dict[str, Any]:
    """OS/editor litter by origin, with a few quoted names."""
    by = Counter(inv.litter.values())
    return {"count": len(inv.litter), "by_origin": dict(sorted(by.items())),
            "reason": "operating-system or editor litter (__MACOSX, ._*, .DS_Store, Thumbs.db, desktop.ini, ~ "
                      "and swap files), never data",
            "examples": [as_data(p.name, 120) for p in list(inv.litter)[:EXAMPLES]]}  # names: folders may be MRNs


def explain(det: Detection) -> dict[str, Any]:
    """The label-source part of detect_layout's answer."""
    src = det.source
    out: dict[str, Any] = {
        "label_source": src.kind,
        "label_file": as_data(str(src.table), 120) if src.table else None,
        "file_column": as_data(src.file_column, 80) if src.file_column else None,
        "label_column": as_data(src.label_column, 200) if src.label_column else None,
        "label_level": det.chosen_level,
        "labels": {as_data(k, 60): v for k, v in sorted(Counter(src.labels.values()).items())[:60]},
        "folder_levels": [lv.summary(lambda x: as_data(x, 60)) for lv in det.tree.levels],
        "label_tables": det.tables,
        "splits": det.tree.split_counts(),
    }
    if det.merged_tables:
        out["merged_tables"] = [as_data(str(t), 120) for t in det.merged_tables]
    if det.option is not None and det.option.one_hot:
        out["one_hot_rows"] = {"one_label": len(det.option.labels), "no_label": det.option.rows_without_label,
                               "several_labels": len(det.option.multi_label)}
    out["ambiguities"] = [a.as_dict() for a in det.ambiguities]
    out["ready_to_organize"] = not det.ambiguities and bool(src.labels)
    return out


def refuse(det: Detection, folder: str) -> None:
    """Raise the refusal organize_dataset gives while an ambiguity is open (nothing is written)."""
    if not det.ambiguities:
        return
    head = (f"nothing was organised: the labels of {folder} are ambiguous, and a wrong guess would file images "
            "under the wrong class. Choose, then call organize_dataset again with the argument named below.")
    lines = [head]
    for i, a in enumerate(det.ambiguities, 1):
        lines.append(f"{i}. [{a.kind}] {a.seen}. To choose: {a.settle}.")
        for opt in a.options[:6]:
            args = ", ".join(f"{k}={json.dumps(v)}" for k, v in opt["arguments"].items())
            lines.append(f"   - organize_dataset(folder={json.dumps(folder)}, {args}) -> {opt['n_labels']} labels "
                         f"over {opt['n_labelled']} images: {json.dumps(opt['labels'])}")
    raise ToolException("\n".join(lines))
