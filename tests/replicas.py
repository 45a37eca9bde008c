"""Small replicas of public medical datasets as their downloads lay them out (tiny images; the layout is the point).

Each builder writes one dataset download under ``root`` and returns a :class:`Replica`: the truth
(image stem -> the class a correct organiser files it under), the junk it planted, and, for a
layout whose label source is genuinely ambiguous, the refusal kinds expected and the choice a user
would name. Layouts follow the datasets' published descriptions:

- ISIC 2018 Task 3: ``ISIC2018_Task3_Training_Input/ISIC_*.jpg`` beside
  ``ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv`` (``image,MEL,NV,...``
  one-hot 1.0/0.0, image column without extension), the same for Validation, and a lesion-grouping CSV;
- ISIC 2019: ``ISIC_2019_Training_Input/`` + ``ISIC_2019_Training_GroundTruth.csv`` (nine one-hot
  columns incl. UNK) + a metadata CSV with no label;
- HAM10000: two image folders ``HAM10000_images_part_1/2`` + ``HAM10000_metadata.csv`` (``dx``, ``dx_type``);
- APTOS 2019: ``train_images/<id_code>.png`` + ``train.csv`` (``id_code,diagnosis`` 0-4), test images
  with an unlabelled ``test.csv`` and a ``sample_submission.csv`` template;
- IDRiD disease grading: nested ``B. Disease Grading/1. Original Images/a. Training Set`` etc. with two
  grading CSVs (``Image name,Retinopathy grade,Risk of macular edema``) to be merged;
- Messidor: ``Base11/*.tif`` + an annotation spreadsheet (``.xlsx`` here; the original is ``.xls``);
- Kermany chest X-ray: ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg`` plus ``__MACOSX`` and
  ``.DS_Store`` litter, as the zip unpacks on macOS;
- BUSI: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/`` with ``<name>_mask.png`` and
  ``<name>_mask_1.png`` beside the images;
- BreakHis: ``BreaKHis_v1/histology_slides/breast/<class>/SOB/<subtype>/<patient>/<40X..>/*.png``
  (class and subtype are both plausible labels: organising must ask);
- RSNA pneumonia: ``stage_2_train_images/<patientId>.dcm`` with two findings CSVs that group the
  images differently (``Target`` 0/1 and ``class``: organising must ask which).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SIDE = 16


@dataclass
class Replica:
    """One replica: where it is and what a correct organiser must do with it."""

    name: str
    layout: str
    modality: str
    source: Path
    truth: dict[str, str] = field(default_factory=dict)  # image stem -> class it must be filed under
    junk: int = 0  # litter + masks + non-image files planted
    refusals: tuple[str, ...] = ()  # ambiguity kinds organising must raise first
    choice: dict[str, Any] = field(default_factory=dict)  # what the user names to settle them
    unlabelled: int = 0  # images the label source gives no label (reported, not organised)


class Writer:
    """Writes tiny, distinct images (class-tinted noise) and text files."""

    def __init__(self, root: Path, seed: int):
        self.root, self.rng = root, np.random.default_rng(seed)
        self.tints: dict[str, int] = {}

    def image(self, rel: str, cls: str = "", mode: str = "RGB") -> Path:
        tint = self.tints.setdefault(cls, 40 + 50 * (len(self.tints) % 4))
        arr = np.clip(self.rng.normal(tint, 30, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr).convert(mode)
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".dcm"):
            from envs.formats import image_bytes

            path.write_bytes(image_bytes(img.convert("L"), "dcm", modality_code="CR", rng=self.rng))
        else:
            img.save(path, format={"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF"}.get(rel.rsplit(".", 1)[-1], "PNG"))
        return path

    def text(self, rel: str, content: str | bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())

    def csv(self, rel: str, header: list[str], rows: list[list[Any]]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
        self.text(rel, buf.getvalue())

    def mac_litter(self, rels: list[str]) -> int:
        """``__MACOSX/<path>/._<name>`` AppleDouble twins and a ``.DS_Store``; returns how many."""
        for rel in rels:
            head, _, name = rel.rpartition("/")
            self.text(f"__MACOSX/{head}/._{name}".replace("//", "/"), b"\x00\x05\x16\x07" + bytes(60))
        self.text(".DS_Store", bytes(64))
        return len(rels) + 1


ISIC18 = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def isic2018(root: Path, seed: int = 0) -> Replica:
    src = root / "isic2018"
    w = Writer(src, seed)
    rep = Replica("isic2018", "one-hot CSV, image column without extension, train+validation tables",
                  "dermatoscopy", src)
    for split, start, n in (("Training", 24306, 14), ("Validation", 34321, 5)):
        rows = []
        for i in range(n):
            stem, cls = f"ISIC_{start + i:07d}", ISIC18[i % len(ISIC18)]
            w.image(f"ISIC2018_Task3_{split}_Input/{stem}.jpg", cls)
            rows.append([stem, *("1.0" if c == cls else "0.0" for c in ISIC18)])
            rep.truth[stem] = cls
        w.csv(f"ISIC2018_Task3_{split}_GroundTruth/ISIC2018_Task3_{split}_GroundTruth.csv", ["image", *ISIC18], rows)
        w.text(f"ISIC2018_Task3_{split}_Input/ATTRIBUTION.txt", "ISIC archive")
        w.text(f"ISIC2018_Task3_{split}_Input/LICENSE.txt", "CC-BY-NC")
    w.csv("ISIC2018_Task3_Training_LesionGroupings.csv", ["image", "lesion_id", "diagnosis_confirm_type"],
          [[s, f"HAM_{i:07d}", "histopathology"] for i, s in enumerate(sorted(rep.truth)[:14])])
    rep.junk = 5 + w.mac_litter([f"ISIC2018_Task3_Training_Input/{s}.jpg" for s in sorted(rep.truth)[:3]])
    return rep


ISIC19 = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")


def isic2019(root: Path, seed: int = 1) -> Replica:
    src = root / "isic2019"
    w = Writer(src, seed)
    rep = Replica("isic2019", "one-hot CSV (9 columns, one all-zero row) + metadata CSV without labels",
                  "dermatoscopy", src)
    rows, meta = [], []
    for i in range(17):
        stem, cls = f"ISIC_{i:07d}", ISIC19[i % 8]
        w.image(f"ISIC_2019_Training_Input/{stem}.jpg", cls)
        zero = i == 16  # a row with no class set: reported, not organised
        rows.append([stem, *("1.0" if c == cls and not zero else "0.0" for c in ISIC19)])
        meta.append([stem, 30 + i, "anterior torso", f"BCN_{i:07d}", "male" if i % 2 else "female"])
        if zero:
            rep.unlabelled += 1
        else:
            rep.truth[stem] = cls
    w.csv("ISIC_2019_Training_GroundTruth.csv", ["image", *ISIC19], rows)
    w.csv("ISIC_2019_Training_Metadata.csv", ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"], meta)
    w.text("ISIC_2019_Training_Input/Thumbs.db", bytes(80))
    rep.junk = 2  # Thumbs.db and the metadata table (no label in it)
    return rep


HAM = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def ham10000(root: Path, seed: int = 2) -> Replica:
    src = root / "ham10000"
    w = Writer(src, seed)
    rep = Replica("ham10000", "two image folders + metadata CSV (dx beside dx_type)", "dermatoscopy", src)
    rows = []
    for i in range(16):
        stem, cls = f"ISIC_{27419 + i:07d}", HAM[i % len(HAM)]
        w.image(f"HAM10000_images_part_{1 + i % 2}/{stem}.jpg", cls)
        rows.append([f"HAM_{i // 2:07d}", stem, cls, "histo" if i % 3 else "follow_up", 60, "male", "scalp"])
        rep.truth[stem] = cls
    w.csv("HAM10000_metadata.csv", ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"], rows)
    return rep


def aptos(root: Path, seed: int = 3) -> Replica:
    src = root / "aptos2019"
    w = Writer(src, seed)
    rep = Replica("aptos2019", "grading CSV (id_code, diagnosis 0-4) + unlabelled test set + submission template",
                  "fundus", src)
    rows = []
    for i in range(15):
        stem, grade = f"{0x000c1434d8d7 + i * 7919:012x}", str(i % 5)
        w.image(f"train_images/{stem}.png", grade)
        rows.append([stem, grade])
        rep.truth[stem] = grade
    w.csv("train.csv", ["id_code", "diagnosis"], rows)
    tests = [f"{0x0005cfc8afb6 + i * 104729:012x}" for i in range(4)]
    for stem in tests:
        w.image(f"test_images/{stem}.png")
    w.csv("test.csv", ["id_code"], [[s] for s in tests])
    w.csv("sample_submission.csv", ["id_code", "diagnosis"], [[s, 0] for s in tests])
    rep.unlabelled = len(tests)
    rep.junk = 2  # test.csv (no label column) and the submission template
    return rep


def idrid(root: Path, seed: int = 4) -> Replica:
    src = root / "idrid_grading"
    w = Writer(src, seed)
    rep = Replica("idrid_grading", "nested folders, training + testing grading CSVs merged", "fundus", src)
    head = ["Image name", "Retinopathy grade", "Risk of macular edema "]
    for split, letter, ids in (("Training", "a", range(1, 13)), ("Testing", "b", range(1, 6))):
        rows = []
        for i in ids:
            stem, grade = f"IDRiD_{i:03d}" if split == "Training" else f"IDRiD_{i:03d}_t", str(i % 5)
            w.image(f"B. Disease Grading/1. Original Images/{letter}. {split} Set/{stem}.jpg", grade)
            rows.append([stem, grade, i % 3])
            rep.truth[stem] = grade
        w.csv(f"B. Disease Grading/2. Groundtruths/{letter}. IDRiD_Disease Grading_{split} Labels.csv", head, rows)
    return rep


def messidor(root: Path, seed: int = 5) -> Replica:
    import openpyxl

    src = root / "messidor_base11"
    w = Writer(src, seed)
    rep = Replica("messidor_base11", "TIFF images + annotation spreadsheet (XLSX)", "fundus", src)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Image name", "Ophthalmologic department", "Retinopathy grade", "Risk of macular edema"])
    for i in range(12):
        stem, grade = f"20051019_{38557 + i:05d}_0100_PP", i % 4
        w.image(f"Base11/{stem}.tif", str(grade))
        sheet.append([f"{stem}.tif", "Service Ophtalmologie Lariboisière", grade, i % 3])
        rep.truth[stem] = str(grade)
    book.save(src / "Annotation_Base11.xlsx")
    return rep


def kermany(root: Path, seed: int = 6) -> Replica:
    src = root / "chest_xray"  # the folder the zip unpacks to, __MACOSX twin inside
    w = Writer(src, seed)
    rep = Replica("kermany_chest_xray", "split folders train/val/test x class folders, macOS litter", "xray", src)
    rels = []
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        for cls in ("NORMAL", "PNEUMONIA"):
            for i in range(n):
                name = (f"IM-{115 + i:04d}-0001-{split}" if cls == "NORMAL"
                        else f"person{i + 1}_{'bacteria' if i % 2 else 'virus'}_{i + 7}_{split}")
                rel = f"{split}/{cls}/{name}.jpeg"
                w.image(rel, cls, mode="L")
                rels.append(rel)
                rep.truth[name] = cls
    w.text("train/.DS_Store", bytes(32))
    rep.junk = 1 + w.mac_litter(rels[:4])
    return rep


def busi(root: Path, seed: int = 7) -> Replica:
    src = root / "busi"
    w = Writer(src, seed)
    rep = Replica("busi", "class folders with _mask.png and _mask_1.png beside the images", "ultrasound", src)
    masks = 0
    for cls, n in (("benign", 7), ("malignant", 5), ("normal", 4)):
        for i in range(1, n + 1):
            stem = f"{cls} ({i})"
            w.image(f"Dataset_BUSI_with_GT/{cls}/{stem}.png", cls, mode="L")
            w.image(f"Dataset_BUSI_with_GT/{cls}/{stem}_mask.png", "mask", mode="L")
            masks += 1
            if i % 3 == 0:
                w.image(f"Dataset_BUSI_with_GT/{cls}/{stem}_mask_1.png", "mask", mode="L")
                masks += 1
            rep.truth[stem] = cls
    w.text("Dataset_BUSI_with_GT/Thumbs.db", bytes(40))
    w.text("Dataset_BUSI_with_GT/benign/desktop.ini", "[.ShellClassInfo]\n")
    rep.junk = masks + 2
    return rep


BREAKHIS = {"benign": {"adenosis": "A", "fibroadenoma": "F"}, "malignant": {"ductal_carcinoma": "DC",
                                                                          "mucinous_carcinoma": "MC"}}


def breakhis(root: Path, seed: int = 8) -> Replica:
    src = root / "breakhis"
    w = Writer(src, seed)
    rep = Replica("breakhis", "class/SOB/subtype/patient/magnification tree (two plausible label levels)",
                  "histopathology", src, refusals=("label_level",), choice={"label_level": 2})
    for cls, subtypes in BREAKHIS.items():
        for sub, code in subtypes.items():
            for p in range(3):
                patient = f"SOB_{cls[0].upper()}_{code}_14-{22549 + 7 * p + len(code)}AB"
                for mag in ("40X", "100X"):
                    stem = f"SOB_{cls[0].upper()}_{code}-14-{22549 + 7 * p + len(code)}AB-{mag[:-1]}-001"
                    w.image(f"BreaKHis_v1/histology_slides/breast/{cls}/SOB/{sub}/{patient}/{mag}/{stem}.png", cls)
                    rep.truth[stem] = cls
    return rep


def rsna(root: Path, seed: int = 9) -> Replica:
    src = root / "rsna_pneumonia"
    w = Writer(src, seed)
    rep = Replica("rsna_pneumonia", "DICOM + two findings CSVs that group differently (boxes/Target, class)",
                  "xray", src, refusals=("label_table",),
                  choice={"label_table": "stage_2_detailed_class_info.csv", "label_column": "class"})
    classes = ("Lung Opacity", "Normal", "No Lung Opacity / Not Normal")
    boxes, info = [], []
    for i in range(12):
        pid, cls = f"{0x0004cfab + i * 977:08x}-14dd-4e16-8a1c-{i:012d}", classes[i % 3]
        w.image(f"stage_2_train_images/{pid}.dcm", cls)
        for _ in range(2 if cls == "Lung Opacity" else 1):  # one row per box, as published
            boxes.append([pid, *((264, 152, 213, 379) if cls == "Lung Opacity" else ("", "", "", "")),
                          int(cls == "Lung Opacity")])
            info.append([pid, cls])
        rep.truth[pid] = cls
    w.csv("stage_2_train_labels.csv", ["patientId", "x", "y", "width", "height", "Target"], boxes)
    w.csv("stage_2_detailed_class_info.csv", ["patientId", "class"], info)
    tests = [f"{0x000924cf + i:08x}-0f8d-42bd-9158-{i:012d}" for i in range(3)]
    for pid in tests:
        w.image(f"stage_2_test_images/{pid}.dcm")
    w.csv("stage_2_sample_submission.csv", ["patientId", "PredictionString"], [[p, "0.5 0 0 100 100"] for p in tests])
    rep.unlabelled = len(tests)
    rep.junk = 2  # the submission template and, once the class table is chosen, the boxes table
    return rep


#: Every replica builder, in table order.
BUILDERS: dict[str, Callable[[Path], Replica]] = {
    "isic2018": isic2018, "isic2019": isic2019, "ham10000": ham10000, "aptos2019": aptos, "idrid": idrid,
    "messidor": messidor, "kermany": kermany, "busi": busi, "breakhis": breakhis, "rsna": rsna,
}


@dataclass
class Outcome:
    """What registering and organising one replica did (one row of the closing table)."""

    replica: Replica
    datasets: list[str]
    organised: dict[str, str]  # stem -> label folder it was written under
    refusals: list[str]  # ambiguity kinds of the first, argument-less organise call
    refusal_text: str
    skipped: dict[str, int]
    card: dict[str, Any]
    source_untouched: bool
    raw_untouched: bool

    @property
    def right(self) -> int:
        from tools.organize import safe_label_dir

        return sum(self.organised.get(stem) == safe_label_dir(cls) for stem, cls in self.replica.truth.items())

    @property
    def junk_skipped(self) -> int:
        return sum(self.skipped.get(k, 0) for k in ("os_and_editor_litter", "masks", "non_image_files"))


def register_and_organise(rep: Replica, env_dir: Path, site_id: str) -> Outcome:
    """Register ``rep`` from the CLI, then organise each dataset as an agent would: first without
    arguments, and, if refused, once more with the choice the replica's user names."""
    import yaml
    from langchain_core.tools import ToolException

    from envs.readonly import tree_hash
    from fedagentbench.cli import main
    from tools.organize import organize_dataset
    from tools.sandbox import Workspace

    before = tree_hash(rep.source)
    rc = main(["envs", "register", str(env_dir), str(rep.source), "--site", site_id, "--modality", rep.modality,
               "--description", f"{rep.name} as downloaded"])
    assert rc == 0, f"registering {rep.name} failed with exit code {rc}"
    site = env_dir / "sites" / site_id
    raw_before = tree_hash(site / "raw")
    doc = yaml.safe_load((site / "data_cards.yaml").read_text(encoding="utf-8"))
    ws = Workspace.open(site)
    organised: dict[str, str] = {}
    refusals: list[str] = []
    text = ""
    skipped: dict[str, int] = {}
    for card in doc["datasets"]:
        try:
            result = organize_dataset(ws, card["folder"])
        except ToolException as exc:
            text = str(exc)
            refusals += [k for k in ("label_level", "label_column", "label_table", "label_source", "id_like_labels",
                                     "one_class", "dominant_class", "multi_label") if f"[{k}]" in text]
            result = organize_dataset(ws, card["folder"], **rep.choice)
        for bucket, info in result["skipped"].items():
            skipped[bucket] = skipped.get(bucket, 0) + info["count"]
        out = site / result["output"]
        organised.update({p.stem: p.parent.name for p in out.rglob("*.png")})
    return Outcome(rep, [c["name"] for c in doc["datasets"]], organised, refusals, text, skipped,
                   doc["datasets"][0], tree_hash(rep.source) == before, tree_hash(site / "raw") == raw_before)


if __name__ == "__main__":  # python -m tests.replicas OUT NAME [NAME ...]: write replicas to try registration
    import sys

    out_dir = Path(sys.argv[1])
    for replica in sys.argv[2:] or list(BUILDERS):
        made = BUILDERS[replica](out_dir)
        print(f"{made.source}  ({made.layout}; {len(made.truth)} images)")
