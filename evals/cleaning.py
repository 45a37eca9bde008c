"""C2's measured detail: which raw files survived organisation and cleaning, judged by the key.

Organised files keep their raw file's stem (``work/organized/<dataset>/<label>/<stem>.png``), so each
kept file is traced back to its truth. A near-duplicate group (an original and its copies) is clean
when at most one of its files is kept.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from envs.key import SiteKey

KINDS = ("duplicate", "offtopic", "corrupt", "non_image", "mask")


def _stem(rel: str) -> str:
    name = rel.rsplit("/", 1)[-1]
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]


def kept_files(organized: Path, folder: str) -> dict[str, str]:
    """stem -> label folder of every image kept under ``organized/<folder>``."""
    root = organized / folder
    if not root.is_dir():
        return {}
    return {p.stem: p.parent.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def c2_site_detail(site: SiteKey, selected: list[str], organized: Path) -> dict[str, Any]:
    """Removal recall per kind, label-error precision/recall, clean images kept, misfiled images."""
    removed: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # kind -> [removed, total]
    clean_kept = clean_total = misfiled = noisy_removed = noisy_total = image_removed = 0
    for ds in site.datasets:
        if ds.name not in selected:
            continue
        kept = kept_files(organized, ds.folder)
        groups: dict[str, list[str]] = defaultdict(list)
        for rel, truth in ds.files.items():
            stem, is_kept = _stem(rel), _stem(rel) in kept
            if truth.role == "image":
                if truth.noisy:
                    noisy_total += 1
                    noisy_removed += not is_kept
                else:
                    clean_total += 1
                    clean_kept += is_kept
                image_removed += not is_kept
                if is_kept and kept[stem] != str(truth.given_label):
                    misfiled += 1
            elif truth.role == "duplicate":
                groups[truth.duplicate_of or rel].append(stem)
            elif truth.role in KINDS:
                removed[truth.role][0] += not is_kept
                removed[truth.role][1] += 1
        for original, dups in groups.items():
            in_group = [_stem(original), *dups]
            n_kept = sum(s in kept for s in in_group)
            removed["duplicate"][0] += len(dups) if n_kept <= 1 else len(in_group) - n_kept
            removed["duplicate"][1] += len(dups)
    counts = {"removed": {k: list(v) for k, v in removed.items()}, "clean": [clean_kept, clean_total],
              "noisy": [noisy_removed, noisy_total], "image_removed": image_removed, "misfiled": misfiled}
    return {**ratios(counts), "counts": counts}


def ratios(counts: dict[str, Any]) -> dict[str, Any]:
    """Recall per kind, label-error precision/recall and the clean share kept, from raw counts."""
    noisy_removed, noisy_total = counts["noisy"]
    kept, total = counts["clean"]
    return {
        "recall": {k: (r / n if n else None) for k, (r, n) in counts["removed"].items()},
        "label_errors": {"recall": noisy_removed / noisy_total if noisy_total else None,
                         "precision": noisy_removed / counts["image_removed"] if counts["image_removed"] else None},
        "clean_kept": kept / total if total else 0.0,
        "misfiled": counts["misfiled"],
    }


def pooled(details: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the raw counts of several sites and return their ratios (a site with two files is not a verdict)."""
    total: dict[str, Any] = {"removed": defaultdict(lambda: [0, 0]), "clean": [0, 0], "noisy": [0, 0],
                             "image_removed": 0, "misfiled": 0}
    for d in details:
        c = d["counts"]
        for k, (r, n) in c["removed"].items():
            total["removed"][k][0] += r
            total["removed"][k][1] += n
        for k in ("clean", "noisy"):
            total[k] = [total[k][0] + c[k][0], total[k][1] + c[k][1]]
        total["image_removed"] += c["image_removed"]
        total["misfiled"] += c["misfiled"]
    return ratios(total)
