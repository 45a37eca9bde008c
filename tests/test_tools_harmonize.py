"""C3 tools: the answer key's label maps applied to organised datasets; refused maps; aggregates only."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from langchain_core.tools import ToolException
from PIL import Image

from tools.harmonize import apply_label_map, client_statistics, list_labels
from tools.organize import organize_dataset
from tools.privacy import as_data
from tools.sandbox import Workspace


def test_key_label_maps_give_the_expected_class_folders(built_envs, tmp_path):
    env = built_envs("xray")
    shutil.copytree(env.root / "sites", tmp_path / "sites", symlinks=True)
    task = next(t for t in env.key.tasks.values() if t.label_maps)
    targets = list(task.target_classes)
    checked = 0
    for site_id, maps in task.label_maps.items():
        ws = Workspace.open(tmp_path / "sites" / site_id)
        expected: Counter[str] = Counter()
        folder_of = {ds.name: ds.folder for ds in env.key.sites[site_id].datasets}
        for name, mapping in maps.items():
            folder = folder_of[name]
            organize_dataset(ws, f"raw/{folder}")
            present = list_labels(ws, f"work/organized/{folder}")["labels"]
            local = {k: v for k, v in mapping.items() if as_data(k, 80) in present}
            if len({c for c in local.values() if c}) < 2 and len(maps) == 1:
                continue
            for label, cls in local.items():
                if cls is not None:
                    expected[cls] += present[as_data(label, 80)]
            result = apply_label_map(ws, f"work/organized/{folder}", local, targets)
            assert result["not_in_map_so_not_included"] == {}
            checked += 1
        on_disk = Counter(p.parts[-3] for p in (ws.work / "harmonized").rglob("*.png"))
        assert on_disk == expected, f"{site_id}: on disk {dict(on_disk)}, the key's maps give {dict(expected)}"
        stats = client_statistics(ws)
        assert stats["n_images"] == sum(on_disk.values())
        assert {k: v for k, v in stats["class_counts"].items() if v} == dict(on_disk)
    assert checked >= 2


@pytest.fixture()
def organised(tmp_path: Path) -> Workspace:
    site = tmp_path / "site_x"
    (site / "raw").mkdir(parents=True)
    ws = Workspace.open(site)
    for label, n, value in (("Normal", 3, 40), ("TB", 2, 200), ("Other", 1, 120)):
        for i in range(n):
            path = ws.work / "organized" / "ds" / label / f"{label}_{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (16, 24), value).save(path)
    return ws


def test_list_labels_quotes_names_with_counts(organised):
    out = list_labels(organised, "work/organized/ds")
    assert out["labels"] == {as_data("Normal"): 3, as_data("TB"): 2, as_data("Other"): 1}


def test_apply_reports_unmapped_labels_and_accepts_quoted_names(organised):
    out = apply_label_map(organised, "work/organized/ds", {"<data>Normal</data>": "normal", "TB": "tb"},
                          ["normal", "tb"])
    assert out["written_per_class"] == {"normal": 3, "tb": 2}
    assert out["not_in_map_so_not_included"] == {as_data("Other"): 1}
    again = apply_label_map(organised, "work/organized/ds", {"Normal": "normal", "TB": "tb", "Other": None},
                            ["normal", "tb"])
    assert again["dropped"] == {as_data("Other"): 1}
    assert len(list((organised.work / "harmonized").rglob("*.png"))) == 5


@pytest.mark.parametrize("mapping, targets, message", [
    ({"normal": "normal", "TB": "tb"}, ["normal", "tb"], "Did you mean"),
    ({"Pneumonia": "tb", "Normal": "normal"}, ["normal", "tb"], "not a label"),
    ({"Normal": "healthy", "TB": "tb"}, ["normal", "tb"], "not one of target_classes"),
    ({"Normal": "normal", " Normal": "tb", "TB": "tb"}, ["normal", "tb"], "twice"),
    ({"Normal": "normal", "TB": "normal"}, ["normal", "tb"], "empty"),
    ({"Normal": None, "TB": None}, ["normal", "tb"], "empty"),
    ({"Normal": "normal"}, [], "target_classes"),
])
def test_bad_maps_are_refused_and_nothing_is_written(organised, mapping, targets, message):
    with pytest.raises(ToolException, match=message):
        apply_label_map(organised, "work/organized/ds", mapping, targets)
    assert not list((organised.work / "harmonized").rglob("*.png"))


def test_client_statistics_are_numbers_only(organised):
    apply_label_map(organised, "work/organized/ds", {"Normal": "normal", "TB": "tb"}, ["normal", "tb"])
    stats = client_statistics(organised)
    assert stats["class_counts"] == {"normal": 3, "tb": 2} and stats["n_images"] == 5
    mean = (3 * 40 + 2 * 200) / 5 / 255
    assert stats["intensity_mean"] == pytest.approx(mean, abs=1e-3)
    assert stats["mean_image_side"] == 20.0
    assert all(isinstance(v, (int, float)) for k, v in stats.items() if k != "class_counts")


def test_each_client_role_gets_its_tools(organised):
    from tools.client import make_client_tools

    names = {role: [t.name for t in tools] for role, tools in make_client_tools(organised).items()}
    assert names["C1"] == ["read_data_cards", "summarize_dataset"]
    assert names["C2"][:3] == ["detect_layout", "organize_dataset", "resize_images"]
    assert names["C3"] == ["read_data_cards", "list_labels", "apply_label_map", "client_statistics"]
