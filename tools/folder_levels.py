"""Class folders at any depth: which folder level of a dataset tree holds its labels.

Real trees put the class anywhere: ``<class>/*.png``, ``train/<class>/*.jpeg``,
``<class>/<subtype>/<patient>/<magnification>/*.png``. Taking the image's own folder as its label is
wrong whenever the class is not the deepest level (BreakHis would be labelled ``40X``/``100X``). So
every level is described and judged:

- split folders (``train``/``val``/``test``, also inside names such as ``Training_Input``) are not
  levels: they are merged and each image keeps its split for the report;
- a level holding one name everywhere is a wrapper folder (``chest_xray/``, ``images/``);
- a level whose names look like patient, study or slide ids (many names, digits, few images per name)
  is an id level, and every level below it (views, magnifications, series) varies inside one
  patient, which a diagnosis cannot;
- the other levels are plausible label levels: few names, each holding many images.

The topmost plausible level is proposed; when there are two or more, the caller must say which.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

SPLIT_WORDS = {"train": "train", "training": "train", "trn": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test", "tst": "test",
               "holdout": "test"}
STRUCTURAL = frozenset({"images", "image", "imgs", "img", "volumes", "data", "files", "series_1", "series_2",
                        "input", "inputs", "raw", "dataset", "photos", "pictures", "scans", "dicom", "png", "jpg"})
MAX_CLASSES = 50
MIN_COVERAGE = 0.9  # share of the images a level must reach to label them
SHOWN = 8


def split_of(name: str) -> str | None:
    """The split a folder name stands for ('train', 'val', 'test'), or None."""
    for token in re.split(r"[^a-z]+", name.lower()):
        if token in SPLIT_WORDS:
            return SPLIT_WORDS[token]
    return None


def _id_like(names: Counter[str], n_images: int) -> bool:
    k = len(names)
    if k > MAX_CLASSES:
        return True
    if k < 5:
        return False
    with_digits = sum(1 for n in names if sum(ch.isdigit() for ch in n) >= 2 and len(n) >= 5)
    return n_images / k < 2 or with_digits >= 0.8 * k


@dataclass
class Level:
    """One folder level (0 = the top, split folders left out) and what it would say as a label."""

    index: int
    names: Counter[str]
    coverage: float  # share of the images that have a folder at this level
    status: str  # "plausible" | "wrapper" | "ids" | "below_ids" | "partial"
    why: str

    def summary(self, quote) -> dict:
        """Counts, and names only where they cannot be patient or study ids (those are withheld)."""
        out = {"label_level": self.index, "status": self.status, "why": self.why, "n_names": len(self.names),
               "coverage": round(self.coverage, 3)}
        if self.status == "ids" or (self.status == "below_ids" and len(self.names) > SHOWN):
            out["names"] = "withheld (may identify patients or studies)"
            return out
        top = self.names.most_common(SHOWN)
        out.update({"names": {quote(k): v for k, v in top}, "more_names": max(0, len(self.names) - len(top))})
        return out


@dataclass
class FolderTree:
    """Every image's folder parts with split folders removed, the split kept aside."""

    parts: dict[PurePosixPath, tuple[str, ...]] = field(default_factory=dict)
    split: dict[PurePosixPath, str] = field(default_factory=dict)
    levels: list[Level] = field(default_factory=list)

    @classmethod
    def of(cls, images: list[PurePosixPath]) -> FolderTree:
        tree = cls()
        for rel in images:
            kept = []
            for part in rel.parts[:-1]:
                s = split_of(part)
                if s is not None:
                    tree.split.setdefault(rel, s)
                else:
                    kept.append(part)
            tree.parts[rel] = tuple(kept)
        tree.levels = tree._judge()
        return tree

    def _judge(self) -> list[Level]:
        n = len(self.parts)
        depth = max((len(p) for p in self.parts.values()), default=0)
        levels, below_ids = [], False
        for d in range(depth):
            names = Counter(p[d] for p in self.parts.values() if len(p) > d)
            covered = sum(names.values())
            coverage = covered / n if n else 0.0
            if below_ids:
                status = "below_ids"
                why = ("below a patient/study id level: varies inside one patient (views, magnifications, "
                       "series), which a diagnosis cannot")
            elif _id_like(names, covered):
                status, why, below_ids = "ids", "names look like patient, study or slide ids", True
            elif len(names) == 1:
                status, why = "wrapper", "one folder name only"
            elif coverage < MIN_COVERAGE:
                status, why = "partial", f"only {coverage:.0%} of the images have a folder at this level"
            else:
                status = "plausible"
                why = f"{len(names)} names, each holding {covered // len(names)} images on average"
            levels.append(Level(d, names, coverage, status, why))
        return levels

    def plausible(self) -> list[Level]:
        return [lv for lv in self.levels if lv.status == "plausible"]

    def labels_at(self, index: int) -> dict[PurePosixPath, str]:
        """Image -> the folder name at ``index`` (images without a folder there get none)."""
        return {rel: p[index] for rel, p in self.parts.items() if len(p) > index}

    def single_class(self) -> Level | None:
        """The only named level when the tree holds one class folder (not a plain image store)."""
        named = [lv for lv in self.levels if lv.status == "wrapper"]
        if len(named) == len(self.levels) and named:
            lv = named[-1]
            if next(iter(lv.names)).lower() not in STRUCTURAL and lv.coverage >= MIN_COVERAGE:
                return lv
        return None

    def split_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.split.values()).items()))
