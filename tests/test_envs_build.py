"""The environment builder: structure, messiness, answer key, determinism, read-only raw data."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pydicom
import pytest
import yaml
from PIL import Image

from envs.build import build, load
from envs.concepts import MODALITIES
from envs.readonly import tree_hash
from envs.sitecards import CARD_FILE

MESS_KINDS = ("duplicate", "offtopic", "corrupt", "non_image", "mask", "label_noise", "identifiers",
              "injection", "mixed_modes")


def _all_files(root):
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_file_is_in_the_key_and_every_key_entry_is_a_file(built_envs, modality):
    env = built_envs(modality)
    for site_id, site in env.key.sites.items():
        on_disk = _all_files(env.site_dir(site_id) / "raw")
        in_key = {path for ds in site.datasets for path in ds.files}
        assert on_disk == in_key, f"{site_id}: files not matching the key: {sorted(on_disk ^ in_key)[:5]}"


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_mess_kind_is_injected_and_recorded(built_envs, modality):
    env = built_envs(modality)
    injected = {kind: 0 for kind in MESS_KINDS}
    for site in env.key.sites.values():
        for ds in site.datasets:
            for kind, n in ds.injected.items():
                injected[kind] += n
    missing = [k for k, n in injected.items() if n == 0]
    assert not missing, f"{modality}: no {missing} injected"
    roles = {t.role for s in env.key.sites.values() for ds in s.datasets for t in ds.files.values()}
    assert {"image", "duplicate", "offtopic", "corrupt", "non_image", "mask"} <= roles
    noisy = [t for s in env.key.sites.values() for ds in s.datasets for t in ds.files.values() if t.noisy]
    assert noisy and all(t.given_label is not None for t in noisy)


@pytest.mark.parametrize("modality", MODALITIES)
def test_corrupt_files_do_not_decode_and_images_do(built_envs, modality):
    env = built_envs(modality)
    corrupt = env.key.files_with_role("corrupt")
    assert corrupt, f"{modality}: no corrupt files planted"
    for (site_id, path) in corrupt:
        with pytest.raises(DECODE_ERRORS):  # what PIL, pydicom and nibabel raise on bad bytes, not a bug
            _decode(env.site_dir(site_id) / "raw" / path)
    good = env.key.files_with_role("duplicate")[:5] + env.key.files_with_role("image")[:5]
    assert len(good) == 10, f"{modality}: fewer than 5 duplicates and 5 images to decode"
    for (site_id, path) in good:
        pixels = np.asarray(_decode(env.site_dir(site_id) / "raw" / path))
        assert pixels.ndim >= 2 and min(pixels.shape[:2]) >= 8 and pixels.std() > 0, f"{path} decoded to {pixels.shape}"


def _decode_errors() -> tuple[type[BaseException], ...]:
    from nibabel.filebasedimages import ImageFileError
    from pydicom.errors import InvalidDicomError

    return (OSError, SyntaxError, ValueError, EOFError, InvalidDicomError, ImageFileError)


#: Errors a decoder raises on a corrupt file (PIL: UnidentifiedImageError, an OSError, or a truncated
#: stream; pydicom: InvalidDicomError; nibabel and gzip: ImageFileError, EOFError, BadGzipFile).
DECODE_ERRORS = _decode_errors()


def _decode(path):
    name = path.name
    if name.endswith(".dcm"):
        return pydicom.dcmread(path).pixel_array
    if name.endswith(".nii.gz"):
        import nibabel as nib

        return nib.load(path).get_fdata()
    with Image.open(path) as im:
        im.load()
        return im


@pytest.mark.parametrize("modality", MODALITIES)
def test_planted_identifiers_and_injection_are_in_the_raw_data(built_envs, modality):
    env = built_envs(modality)
    assert env.key.identifiers, "no patient identifiers planted"
    raw_text = b"".join(p.read_bytes() for s in env.key.sites for p in (env.site_dir(s) / "raw").rglob("*")
                        if p.is_file() and p.suffix in (".csv", ".dcm"))
    found = [i for i in env.key.identifiers if i.encode() in raw_text]
    assert len(found) >= len(env.key.identifiers) // 2
    descriptions = [ds["description"] for s in env.key.sites
                    for ds in yaml.safe_load((env.site_dir(s) / CARD_FILE).read_text())["datasets"]]
    assert sum(env.key.injection_text in d for d in descriptions) == 1


@pytest.mark.parametrize("modality", MODALITIES)
def test_tasks_are_federated_and_label_maps_cover_site_labels(built_envs, modality):
    env = built_envs(modality)
    assert len(env.key.tasks) >= 3
    assert any(t.implicit_goal != "none" for t in env.key.tasks.values())
    for task in env.key.tasks.values():
        assert len(task.qualifying) >= 2, f"{task.task_id} has fewer than two qualifying sites"
        for site_id, names in task.qualifying.items():
            site = env.key.sites[site_id]
            assert site.kind == "fit"
            for ds in site.datasets:
                if ds.name in names:
                    assert set(task.label_maps[site_id][ds.name]) == set(ds.native_labels)
                    mapped = {c for c in task.label_maps[site_id][ds.name].values() if c}
                    assert len(mapped) >= 2
    kinds = {s.kind for s in env.key.sites.values()}
    assert "fit" in kinds and len(kinds) >= 2, "every environment has sites whose data does not fit"


@pytest.mark.parametrize("modality", MODALITIES)
def test_raw_trees_and_cards_are_read_only(built_envs, modality):
    env = built_envs(modality)
    writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for site_id in env.key.sites:
        site = env.site_dir(site_id)
        for path in [site / CARD_FILE, site / "raw", *(site / "raw").rglob("*")]:
            assert not os.lstat(path).st_mode & writable, f"{path} is writable"
        assert os.access(site, os.W_OK), "the site folder itself stays writable for work/"


def test_server_sees_only_site_ids_and_requests(built_envs):
    env = built_envs("dermatoscopy")
    sites = json.loads((env.root / "server" / "sites.json").read_text())
    assert sites == {"modality": "dermatoscopy", "sites": sorted(env.key.sites)}
    tasks = json.loads((env.root / "server" / "tasks.json").read_text())
    assert len(tasks) == len(env.key.tasks) and all(set(t) == {"task_id", "request"} for t in tasks)
    for site_id in env.key.sites:  # the key never sits inside a site
        assert not list(env.site_dir(site_id).rglob("answer_key*"))


def test_same_seed_gives_identical_tree_other_seed_differs(tmp_path):
    a = build("ultrasound", tmp_path / "a", seed=3, scale=0.2)
    b = build("ultrasound", tmp_path / "b", seed=3, scale=0.2)
    c = build("ultrasound", tmp_path / "c", seed=4, scale=0.2)
    assert tree_hash(a.root) == tree_hash(b.root)
    assert tree_hash(a.root) != tree_hash(c.root)


def test_build_refuses_to_overwrite_without_force(tmp_path, built_envs):
    build("mri", tmp_path / "env", seed=1, scale=0.15)
    with pytest.raises(FileExistsError, match="--force"):
        build("mri", tmp_path / "env", seed=1, scale=0.15)
    env = build("mri", tmp_path / "env", seed=2, scale=0.15, force=True)
    assert load(tmp_path / "env").key.seed == 2 == env.key.seed


def test_bad_arguments_say_how_to_fix_them(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        build("radiology", tmp_path / "x")
    with pytest.raises(ValueError, match="scale"):
        build("xray", tmp_path / "x", scale=0)
    with pytest.raises(FileNotFoundError, match="build it first"):
        load(tmp_path)


@pytest.mark.parametrize("modality", ["dermatoscopy", "xray"])
def test_file_names_do_not_reveal_what_a_file_is(built_envs, modality):
    env = built_envs(modality)
    for site in env.key.sites.values():
        for ds in site.datasets:
            pictures = {p: t for p, t in ds.files.items() if t.role in ("image", "duplicate", "offtopic", "corrupt")}
            prefixes = {p.rsplit("/", 1)[-1].split("_")[0] for p in pictures}
            assert len(prefixes) == 1, f"{ds.name}: file-name prefixes differ by role: {prefixes}"
            for truth in pictures.values():
                if truth.role == "duplicate":
                    assert truth.duplicate_of in ds.files and ds.files[truth.duplicate_of].role == "image"
