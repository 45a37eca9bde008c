"""C2 organise tools on every modality's environment, checked against the answer key; bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from langchain_core.tools import ToolException
from PIL import Image

from envs.concepts import MODALITIES
from tools.layout_readers import stem_of
from tools.organize import OrganizeArgs, detect_layout, organize_dataset, resize_images
from tools.sandbox import Workspace


def copy_env_sites(env, dest: Path) -> Path:
    """A private copy of an environment's sites (tests write work/; the shared build stays clean)."""
    shutil.copytree(env.root / "sites", dest / "sites", symlinks=True)
    return dest / "sites"


def labelled(site):
    return [ds for ds in site.datasets if ds.native_labels]


@pytest.fixture(scope="module")
def organised(built_envs, tmp_path_factory):
    """modality -> (env, sites copy, {(site, folder): organize_dataset result})."""
    cache: dict[str, tuple] = {}

    def get(modality: str):
        if modality not in cache:
            env = built_envs(modality)
            sites = copy_env_sites(env, tmp_path_factory.mktemp(f"org_{modality}"))
            results = {}
            for site_id, site in env.key.sites.items():
                ws = Workspace.open(sites / site_id)
                for ds in labelled(site):
                    results[(site_id, ds.folder)] = organize_dataset(ws, f"raw/{ds.folder}")
            cache[modality] = (env, sites, results)
        return cache[modality]

    return get


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_clean_image_lands_in_its_given_label_folder(organised, modality):
    env, sites, _ = organised(modality)
    for site_id, site in env.key.sites.items():
        for ds in labelled(site):
            out = sites / site_id / "work" / "organized" / ds.folder
            written = {(p.parent.name, p.stem) for p in out.rglob("*.png")}
            for path, truth in ds.files.items():
                stem = stem_of(path.rsplit("/", 1)[-1])
                if truth.role in ("image", "duplicate", "offtopic"):
                    assert (truth.given_label, stem) in written, f"{site_id}/{path} not in {truth.given_label}/"
                else:
                    assert all(s != stem for _, s in written), f"{site_id}/{path} ({truth.role}) was copied"


@pytest.mark.parametrize("modality", MODALITIES)
def test_corrupt_non_image_and_mask_files_are_all_reported(organised, modality):
    env, _, results = organised(modality)
    for site_id, site in env.key.sites.items():
        for ds in labelled(site):
            skipped = results[(site_id, ds.folder)]["skipped"]
            roles = [t.role for t in ds.files.values()]
            assert skipped["unreadable_images"]["count"] == roles.count("corrupt")
            litter = skipped["os_and_editor_litter"]["count"]  # Thumbs.db, .DS_Store: counted apart
            assert skipped["non_image_files"]["count"] + litter == roles.count("non_image")
            assert skipped["masks"]["count"] == roles.count("mask")
            assert skipped["labels_for_missing_files"]["count"] == 0
            assert skipped["images_without_label"]["count"] == 0


@pytest.mark.parametrize("modality", MODALITIES)
def test_label_names_come_out_exactly_as_the_site_wrote_them(organised, modality):
    env, sites, _ = organised(modality)
    for site_id, site in env.key.sites.items():
        for ds in labelled(site):
            out = sites / site_id / "work" / "organized" / ds.folder
            assert {p.name for p in out.iterdir()} <= set(ds.native_labels)


def test_unlabelled_segmentation_sets_are_refused_with_a_reason(organised):
    env, sites, _ = organised("xray")
    seg = [(s, ds) for s, site in env.key.sites.items() for ds in site.datasets if not ds.native_labels]
    assert seg, "the environment should hold a segmentation-only dataset"
    for site_id, ds in seg:
        with pytest.raises(ToolException, match="no labels"):
            organize_dataset(Workspace.open(sites / site_id), f"raw/{ds.folder}")


def test_rerunning_replaces_its_own_output(organised):
    _, sites, results = organised("xray")
    (site_id, folder), first = next(iter(results.items()))
    ws = Workspace.open(sites / site_id)
    stray = ws.work / "organized" / folder / "stale.png"
    Image.new("L", (8, 8)).save(stray)
    again = organize_dataset(ws, f"raw/{folder}")
    assert again["per_label"] == first["per_label"] and not stray.exists()


def test_detect_layout_names_each_layout(organised):
    env, sites, _ = organised("mri")
    seen = {}
    for site_id, site in env.key.sites.items():
        for ds in site.datasets:
            seen[ds.layout] = detect_layout(Workspace.open(sites / site_id), f"raw/{ds.folder}")["layout"]
    expected = {"class_folders": "class_folders", "flat_csv": "flat images + csv labels",
                "flat_json": "flat images + json labels", "nested_patient": "nested patient/study folders + csv labels",
                "dicom": "dicom series + csv labels", "nifti": "nifti volumes + csv labels",
                "masks": "images_and_masks (no labels)"}
    assert set(seen) == set(expected), "the MRI environment should hold every layout"
    for layout, name in seen.items():
        assert name == expected[layout], layout


# --- bad input on hand-made sites --------------------------------------------------------------------------
def _site(tmp_path: Path) -> Path:
    site = tmp_path / "site_x"
    (site / "raw" / "ds" / "images").mkdir(parents=True)
    return site


def _png(path: Path, size=(32, 32), mode="L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)


def test_empty_csv_gets_a_clear_refusal(tmp_path):
    site = _site(tmp_path)
    _png(site / "raw/ds/images/a.png")
    (site / "raw/ds/labels.csv").write_text("file,label\n")
    with pytest.raises(ToolException, match="no rows"):
        organize_dataset(Workspace.open(site), "raw/ds")


def test_csv_without_label_column_asks_for_one_and_accepts_it(tmp_path):
    site = _site(tmp_path)
    for n in "ab":
        _png(site / f"raw/ds/images/{n}.png")
    (site / "raw/ds/labels.csv").write_text("file,outlook,mrn\na.png,x,MRN1234567\nb.png,y,MRN7654321\n")
    ws = Workspace.open(site)
    with pytest.raises(ToolException, match="label_column") as err:
        organize_dataset(ws, "raw/ds")
    assert "MRN1234567" not in str(err.value)
    result = organize_dataset(ws, "raw/ds", label_column="outlook")
    assert result["written"] == 2
    with pytest.raises(ToolException, match="identify"):
        organize_dataset(ws, "raw/ds", label_column="mrn")


def test_labels_for_missing_files_are_reported_and_the_rest_kept(tmp_path):
    site = _site(tmp_path)
    _png(site / "raw/ds/images/a.png")
    _png(site / "raw/ds/images/b.png")
    (site / "raw/ds/labels.json").write_text(json.dumps({"a.png": "cat", "b.png": "dog", "gone.png": "cat"}))
    result = organize_dataset(Workspace.open(site), "raw/ds")
    assert result["written"] == 2
    assert result["skipped"]["labels_for_missing_files"]["count"] == 1
    assert "gone.png" in result["skipped"]["labels_for_missing_files"]["examples"][0]


def test_mixed_sizes_and_modes_survive_and_resize_normalises_them(tmp_path):
    site = _site(tmp_path)
    _png(site / "raw/ds/a/one.png", (40, 30), "L")
    _png(site / "raw/ds/a/two.png", (64, 64), "RGB")
    _png(site / "raw/ds/b/three.png", (20, 50), "RGBA")
    (site / "raw/ds/b/four.png").write_bytes(b"")
    ws = Workspace.open(site)
    result = organize_dataset(ws, "raw/ds")
    assert result["written"] == 3 and result["skipped"]["unreadable_images"]["count"] == 1
    resized = resize_images(ws, "work/organized/ds", 32, "RGB")
    assert resized["changed"] == 3
    for p in (ws.work / "organized/ds").rglob("*.png"):
        with Image.open(p) as im:
            assert im.size == (32, 32) and im.mode == "RGB"
    assert resize_images(ws, "work/organized/ds", 32, "RGB")["changed"] == 0


def test_resize_refuses_raw(tmp_path):
    site = _site(tmp_path)
    _png(site / "raw/ds/a/one.png")
    with pytest.raises(ToolException, match="read-only"):
        resize_images(Workspace.open(site), "raw/ds", 32, "L")


def test_arguments_echoed_back_with_the_data_quotes_are_understood(tmp_path):
    """Tool outputs quote file text as <data>...</data>; a model that copies a column or folder name
    with the quotes (Qwen2.5-Coder-1.5B did, 3 times in a row on 5 of 8 sites) is understood."""
    from tools.client import bind

    site = _site(tmp_path)
    for n in "ab":
        _png(site / f"raw/ds/images/{n}.png")
    (site / "raw/ds/labels.csv").write_text("path,finding\na.png,x\nb.png,y\n")
    tool = bind(Workspace.open(site), organize_dataset, OrganizeArgs)
    result = tool.invoke({"folder": "<data>raw/ds</data>", "label_column": "<data>finding</data>",
                          "file_column": "<data>path</data>"})
    assert isinstance(result, dict) and result["written"] == 2, result
