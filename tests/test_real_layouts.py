"""Public datasets as published: registered from the CLI, organised with every image under its right
class, junk counted, raw untouched, and refused (with the call that settles it) where ambiguous."""

from __future__ import annotations

import logging

import pytest
import yaml
from PIL import Image

from tests.replicas import BUILDERS, register_and_organise
from tools.organize import detect_layout, organize_dataset
from tools.sandbox import Workspace


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.INFO)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_replica_is_registered_and_organised_under_the_right_classes(tmp_path, name):
    rep = BUILDERS[name](tmp_path / "downloads")
    out = register_and_organise(rep, tmp_path / "env", name)
    assert out.right == len(rep.truth), f"{name}: {len(rep.truth) - out.right} images under a wrong class"
    assert set(out.organised) == set(rep.truth), f"{name}: organised images the truth does not list"
    assert out.junk_skipped == rep.junk
    assert out.skipped["images_without_label"] == rep.unlabelled
    assert out.source_untouched and out.raw_untouched
    assert tuple(out.refusals) == rep.refusals
    if rep.refusals:
        arg = next(iter(rep.choice))
        assert "organize_dataset(folder=" in out.refusal_text and f"{arg}=" in out.refusal_text
    card = out.card
    assert card["modality"] == rep.modality and card["body_part"] and card["task_type"] in ("classification", "grading")
    assert set(card["labels"]) >= set(rep.truth.values()) - {"No Lung Opacity / Not Normal", "Normal"}
    assert "labels" in card["derived"]["fields"] and "edit" in card["derived"]["note"]


def _png(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)


def _site(tmp_path):
    site = tmp_path / "site"
    (site / "work").mkdir(parents=True)
    return site


def _refusal(ws, folder, kind, **kwargs):
    from langchain_core.tools import ToolException

    with pytest.raises(ToolException) as err:
        organize_dataset(ws, folder, **kwargs)
    text = str(err.value)
    assert f"[{kind}]" in text and "nothing was organised" in text
    assert not (ws.work / "organized").exists() or not any((ws.work / "organized").iterdir())
    return text


def test_two_label_columns_that_disagree_are_a_choice(tmp_path):
    site = _site(tmp_path)
    rows = ["file,diagnosis,target"]
    for i in range(8):
        _png(site / f"raw/ds/images/lesion{i}.png")
        rows.append(f"lesion{i}.png,{'melanoma' if i % 2 else 'nevus'},{int(i < 4)}")
    (site / "raw/ds/labels.csv").write_text("\n".join(rows) + "\n")
    ws = Workspace.open(site)
    assert detect_layout(ws, "raw/ds")["ambiguities"][0]["kind"] == "label_column"
    text = _refusal(ws, "raw/ds", "label_column")
    assert 'label_column="<data>target</data>"' in text and 'label_column="<data>diagnosis</data>"' in text
    from tools.client import bind
    from tools.organize import OrganizeArgs

    tool = bind(ws, organize_dataset, OrganizeArgs)  # as the model calls it, echoing the quoted name back
    done = tool.invoke({"folder": "raw/ds", "label_column": "<data>diagnosis</data>"})
    assert done["per_label"] == {"<data>melanoma</data>": 4, "<data>nevus</data>": 4}


def test_a_label_column_holding_ids_is_refused(tmp_path):
    site = _site(tmp_path)
    rows = ["image,lesion_class,note_class"]
    for i in range(20):
        _png(site / f"raw/ds/{i}.png")
        rows.append(f"{i}.png,LES{1000 + i % 12},free text {i}")
    (site / "raw/ds/labels.csv").write_text("\n".join(rows) + "\n")
    ws = Workspace.open(site)
    text = _refusal(ws, "raw/ds", "id_like_labels")
    assert "12 different values over 20 rows" in text
    assert organize_dataset(ws, "raw/ds", label_column="lesion_class")["written"] == 20  # named: accepted
    from langchain_core.tools import ToolException

    with pytest.raises(ToolException, match="cannot be a class label"):  # one value per row: never a label
        organize_dataset(ws, "raw/ds", label_column="note_class")


def test_one_class_only_is_refused_until_named(tmp_path):
    site = _site(tmp_path)
    for i in range(5):
        _png(site / f"raw/ds/melanoma/{i}.png")
    ws = Workspace.open(site)
    assert [a["kind"] for a in detect_layout(ws, "raw/ds")["ambiguities"]] == ["one_class"]
    text = _refusal(ws, "raw/ds", "one_class")
    assert "label_level=0" in text
    assert organize_dataset(ws, "raw/ds", label_level=0)["per_label"] == {"<data>melanoma</data>": 5}


def test_a_folder_with_over_90_percent_of_the_images_is_refused(tmp_path):
    site = _site(tmp_path)
    for i in range(19):
        _png(site / f"raw/ds/scans/{i}.png")
    _png(site / "raw/ds/extra/x.png")
    ws = Workspace.open(site)
    text = _refusal(ws, "raw/ds", "dominant_class")
    assert "19 of 20" in text and "95%" in text
    assert organize_dataset(ws, "raw/ds", label_level=0)["written"] == 20


def test_multi_label_rows_are_refused_then_skipped_on_request(tmp_path):
    site = _site(tmp_path)
    rows = ["Image Index,Atelectasis,Effusion,No Finding"]
    for i in range(10):
        _png(site / f"raw/ds/images/{i:08d}_000.png")
        hot = [1, 1, 0] if i < 3 else ([1, 0, 0] if i % 2 else [0, 0, 1])
        rows.append(f"{i:08d}_000.png," + ",".join(map(str, hot)))
    (site / "raw/ds/labels.csv").write_text("\n".join(rows) + "\n")
    ws = Workspace.open(site)
    det = detect_layout(ws, "raw/ds")
    assert det["one_hot_rows"] == {"one_label": 7, "no_label": 0, "several_labels": 3}
    text = _refusal(ws, "raw/ds", "multi_label")
    assert "skip_multi_label=true" in text and "3 of 10 rows" in text
    done = organize_dataset(ws, "raw/ds", skip_multi_label=True)
    assert done["written"] == 7 and done["skipped"]["multi_label_rows"]["count"] == 3


def test_class_folders_are_found_below_split_and_wrapper_folders(tmp_path):
    site = _site(tmp_path)
    for split in ("train", "val", "test"):
        for cls in ("NORMAL", "PNEUMONIA"):
            for i in range(2):
                _png(site / f"raw/cx/chest_xray/{split}/{cls}/{split}_{cls}_{i}.jpeg")
    ws = Workspace.open(site)
    det = detect_layout(ws, "raw/cx")
    assert det["ready_to_organize"] and det["splits"] == {"test": 4, "train": 4, "val": 4}
    assert [lv["status"] for lv in det["folder_levels"]] == ["wrapper", "plausible"]
    done = organize_dataset(ws, "raw/cx")
    assert done["per_label"] == {"<data>NORMAL</data>": 6, "<data>PNEUMONIA</data>": 6}
    assert done["splits_merged"] == {"test": 4, "train": 4, "val": 4}


def test_breakhis_levels_are_listed_with_counts_and_ids_are_never_labels(tmp_path):
    rep = BUILDERS["breakhis"](tmp_path / "dl")
    site = _site(tmp_path)
    (site / "raw").mkdir()
    import shutil

    shutil.copytree(rep.source, site / "raw" / "bh")
    ws = Workspace.open(site)
    det = detect_layout(ws, "raw/bh")
    status = {lv["label_level"]: lv["status"] for lv in det["folder_levels"]}
    assert status[3] == "plausible" and status[5] == "plausible"
    assert status[6] == "ids" and status[7] == "below_ids"  # patients, then magnifications
    levels = det["ambiguities"][0]["options"]
    assert [o["n_labels"] for o in levels] == [2, 4]
    preview = detect_layout(ws, "raw/bh", label_level=5)
    assert preview["ready_to_organize"] and len(preview["labels"]) == 4


def test_a_dataset_with_its_label_csv_beside_image_folders_is_registered_as_one(tmp_path):
    rep = BUILDERS["isic2018"](tmp_path / "dl")
    out = register_and_organise(rep, tmp_path / "env", "derm")
    assert out.datasets == ["isic2018"]  # not one per image folder, and __MACOSX is no dataset


def test_sub_folders_that_are_datasets_of_their_own_are_registered_apart(tmp_path):
    from fedagentbench.cli import main

    src = tmp_path / "hospital"
    BUILDERS["ham10000"](src)
    BUILDERS["isic2019"](src)
    _png(src / "__MACOSX/ham10000/._x.jpg")
    assert main(["envs", "register", str(tmp_path / "env"), str(src), "--site", "h1", "--modality",
                 "dermatoscopy", "--body-part", "skin"]) == 0
    doc = yaml.safe_load((tmp_path / "env/sites/h1/data_cards.yaml").read_text())
    assert [d["name"] for d in doc["datasets"]] == ["ham10000", "isic2019"]
    assert all("body_part" not in d["derived"]["fields"] for d in doc["datasets"])


def test_register_refuses_bad_input_with_a_fix(tmp_path, capsys):
    from fedagentbench.cli import main

    assert main(["envs", "register", str(tmp_path / "env"), str(tmp_path / "nope"), "--site", "a",
                 "--modality", "xray"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match="unknown modality"):
        import argparse

        from fedagentbench.cli.envs_cmd import _register

        _register(argparse.Namespace(env_dir=str(tmp_path / "env"), source=str(tmp_path / "src"), site="a",
                                     modality="ct", description="", cards=None, body_part=None))


def test_patient_id_folders_are_withheld_and_never_labels(tmp_path):
    site = _site(tmp_path)
    rows = ["file,diagnosis"]
    for i in range(6):
        rel = f"MRN{4455660 + i}/series_{i % 2 + 1}/img{i}.png"
        _png(site / "raw/ds" / rel)
        rows.append(f"{rel},{'normal' if i % 2 else 'pneumonia'}")
    (site / "raw/ds/labels.csv").write_text("\n".join(rows) + "\n")
    ws = Workspace.open(site)
    det = detect_layout(ws, "raw/ds")
    assert "MRN445566" not in str(det) and det["ready_to_organize"]
    assert det["folder_levels"][0]["names"].startswith("withheld")
    from langchain_core.tools import ToolException

    with pytest.raises(ToolException, match="look like patient"):
        organize_dataset(ws, "raw/ds", label_level=0)


def test_one_hot_columns_beside_a_named_label_column_that_disagrees_are_a_choice(tmp_path):
    site = _site(tmp_path)
    rows = ["file,label,reviewed,flagged"]
    for i in range(8):
        _png(site / f"raw/ds/{i}.png")
        rows.append(f"{i}.png,{'benign' if i % 2 else 'malignant'},{int(i < 4)},{int(i >= 4)}")
    (site / "raw/ds/labels.csv").write_text("\n".join(rows) + "\n")
    ws = Workspace.open(site)
    text = _refusal(ws, "raw/ds", "label_column")
    assert "one_hot_columns=" in text and 'label_column="<data>label</data>"' in text
    assert organize_dataset(ws, "raw/ds", label_column="label")["written"] == 8
