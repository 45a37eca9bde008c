"""Writing a dataset's items to disk in one of the layouts hospitals really use.

Column names, JSON shapes and folder depths vary on purpose: the preprocessing agent must read the
data, not assume a format. Every written file is recorded with its truth, metadata files included.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from envs import messiness
from envs.formats import image_bytes
from envs.items import Item
from envs.key import FileTruth
from envs.plan import DatasetPlan

FILE_COLUMNS = ("image", "filename", "file", "image_id", "img_path")
LABEL_COLUMNS = ("label", "diagnosis", "dx", "class", "finding")
DICOM_CODES = {"xray": "CR", "mri": "MR", "ultrasound": "US", "fundus": "OP", "dermatoscopy": "XC",
               "histopathology": "SM"}


class DatasetWriter:
    """Writes one dataset under ``raw/<folder>/`` and records every file's truth."""

    def __init__(self, raw: Path, plan: DatasetPlan, modality: str, rng: np.random.Generator,
                 inject_text: bool):
        self.raw, self.plan, self.modality, self.rng = raw, plan, modality, rng
        self.root = raw / plan.folder
        self.files: dict[str, FileTruth] = {}
        self.identities: list[dict[str, str]] = []
        self.inject_text = inject_text

    def _put(self, rel: str, data: bytes, truth: FileTruth) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files[f"{self.plan.folder}/{rel}"] = truth

    def _fmt(self) -> str:
        return {"dicom": "dcm", "nifti": "nii.gz"}.get(self.plan.layout, self.plan.ext)

    def _bytes(self, item: Item, fmt: str, identity: dict[str, str] | None = None) -> bytes:
        if item.truth.role == "corrupt":
            data, note = messiness.corrupt_bytes(item.extras["corrupt_from"], fmt if fmt in ("png", "jpg") else "png",
                                                 self.rng)
            if fmt in ("dcm", "nii.gz") and data:
                full = image_bytes(item.extras["corrupt_from"], fmt, identity=identity, rng=self.rng)
                data, note = full[: len(full) // 3], "truncated to a third"
            item.truth.note = note
            return data
        return image_bytes(item.image, fmt, identity=identity, modality_code=DICOM_CODES[self.modality],
                           rng=self.rng)

    def write(self, items: list[Item]) -> None:
        """Write the items in the plan's layout, then the stray files."""
        getattr(self, f"_write_{self.plan.layout}")(items)
        for name, (data, what) in messiness.stray_files(self.rng, self.plan.card.description).items():
            where = name if self.rng.random() < 0.6 or not items else f"{self._subdir_of_first()}/{name}"
            self._put(where, data, FileTruth(role="non_image", note=what))

    def resolve_duplicates(self) -> None:
        """Point each duplicate's ``duplicate_of`` at its original's raw-relative path."""
        by_stem = {path.rsplit("/", 1)[-1].split(".")[0]: path for path, t in self.files.items() if t.role == "image"}
        for truth in self.files.values():
            if truth.role == "duplicate" and truth.duplicate_of in by_stem:
                truth.duplicate_of = by_stem[truth.duplicate_of]

    def _subdir_of_first(self) -> str:
        first = next(iter(self.files), f"{self.plan.folder}/x")
        parts = first.split("/")[1:-1]
        return "/".join(parts) or "."

    def _image_and_mask(self, rel_dir: str, item: Item, fmt: str) -> str:
        rel = f"{rel_dir}/{item.stem}.{fmt}" if rel_dir else f"{item.stem}.{fmt}"
        self._put(rel, self._bytes(item, fmt), item.truth)
        if "mask" in item.extras:
            mask_rel = rel.rsplit(".", 1)[0] + "_mask.png"
            self._put(mask_rel, messiness.encode(item.extras["mask"], "png"),
                      FileTruth(role="mask", note=f"mask of {item.stem}"))
        return rel

    # --- layouts -------------------------------------------------------------------------
    def _write_class_folders(self, items: list[Item]) -> None:
        for item in items:
            self._image_and_mask(str(item.label), item, self._fmt())

    def _write_masks(self, items: list[Item]) -> None:
        for item in items:
            self._put(f"images/{item.stem}.png", self._bytes(item, "png"), item.truth)
            mask = messiness.mask_for(item.image.size if item.image else (64, 64), self.rng)
            self._put(f"masks/{item.stem}_mask.png", messiness.encode(mask, "png"),
                      FileTruth(role="mask", note=f"mask of {item.stem}"))

    def _write_flat_csv(self, items: list[Item]) -> None:
        fmt = self._fmt()
        file_col, label_col = (str(self.rng.choice(c)) for c in (FILE_COLUMNS, LABEL_COLUMNS))
        rows = []
        for item in items:
            self._image_and_mask("images", item, fmt)
            ref = item.stem if file_col == "image_id" else f"{item.stem}.{fmt}"
            who = messiness.patient(self.rng)
            self.identities.append(who)
            rows.append({file_col: ref, label_col: item.label, **who,
                         "age": str(int(self.rng.integers(18, 90))), "sex": str(self.rng.choice(["F", "M"])),
                         "notes": ""})
        self._csv("labels.csv", rows)

    def _write_flat_json(self, items: list[Item]) -> None:
        fmt = self._fmt()
        shape = int(self.rng.integers(3))
        refs = [(self._image_and_mask("images", it, fmt).split("/", 1)[1], it.label) for it in items]
        if shape == 0:
            doc: object = {"images": [{"file": f, "label": lab} for f, lab in refs]}
        elif shape == 1:
            doc = {f: lab for f, lab in refs}
        else:
            doc = [{"image": f, "annotations": {"class": lab}} for f, lab in refs]
        self._put("labels.json", json.dumps(doc, indent=1).encode(), FileTruth(role="metadata"))

    def _write_nested_patient(self, items: list[Item]) -> None:
        fmt, rows = self._fmt(), []
        for i, item in enumerate(items):
            pid = f"P{int(self.rng.integers(10**4, 10**5))}"
            rel = self._image_and_mask(f"{pid}/study_{i % 3 + 1}", item, fmt)
            who = messiness.patient(self.rng)
            self.identities.append({k: who[k] for k in ("patient_name", "birth_date")})
            rows.append({"patient_id": pid, "patient_name": who["patient_name"], "birth_date": who["birth_date"],
                         "path": rel, "finding": item.label})
        self._csv("labels.csv", rows)

    def _write_dicom(self, items: list[Item]) -> None:
        rows = []
        for i, item in enumerate(items):
            who = messiness.patient(self.rng)
            self.identities.append(who)
            rel = f"{who['mrn']}/series_{i % 2 + 1}/{item.stem}.dcm"
            self._put(rel, self._bytes(item, "dcm", identity=who), item.truth)
            rows.append({"file": rel, "diagnosis": item.label})
        self._csv("labels.csv", rows)

    def _write_nifti(self, items: list[Item]) -> None:
        rows = []
        for item in items:
            rel = f"volumes/{item.stem}.nii.gz"
            self._put(rel, self._bytes(item, "nii.gz"), item.truth)
            rows.append({"subject": item.stem, "label": item.label})
        self._csv("labels.csv", rows)

    def _csv(self, name: str, rows: list[dict]) -> None:
        if self.inject_text and rows and "notes" in rows[0]:
            rows[int(self.rng.integers(len(rows)))]["notes"] = messiness.INJECTION
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["file", "label"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self._put(name, buf.getvalue().encode(), FileTruth(role="metadata"))
