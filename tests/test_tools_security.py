"""The privacy boundary around the client tools: path escapes, untouched raw data, no leaks.

Path-escape forms tried against every tool that takes a path (through the bound tools, as a
ToolNode calls them): '..' in several places, absolute paths elsewhere and into another site,
symlinks planted in work/ that point to another site and to /etc, unicode look-alikes (fullwidth
letters and slash, a combining accent), a very long name and a very long path, a NUL byte,
backslash separators and the empty string.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from envs.concepts import MODALITIES
from envs.readonly import tree_hash
from tools.client import make_client_tools
from tools.privacy import DATA_CLOSE, DATA_OPEN
from tools.sandbox import Workspace

PATH_TOOLS = {  # tool -> extra arguments it needs beside the path
    "summarize_dataset": {}, "detect_layout": {}, "organize_dataset": {},
    "resize_images": {"size": 32, "channels": "L"}, "list_labels": {}, "client_statistics": {},
    "apply_label_map": {"mapping": {"a": "x"}, "target_classes": ["x", "y"]},
}
PIXEL_LIKE = re.compile(r"(\d{1,3}[,\s]+){64,}|[A-Za-z0-9+/=]{200,}|\\x[0-9a-f]{2}(\\x[0-9a-f]{2}){16,}")
DATA_SPAN = re.compile(re.escape(DATA_OPEN) + ".*?" + re.escape(DATA_CLOSE), re.DOTALL)


def _tools(ws: Workspace) -> dict:
    return {t.name: t for role in make_client_tools(ws).values() for t in role}


DOTDOT, OUTSIDE, LINK = r"uses '\.\.'", r"is outside this site|uses '\.\.'", r"leads outside this site"


def _escape_forms(site: Path, other: Path) -> list[tuple[str, str]]:
    """(hostile folder, the refusal it must get)."""
    return [
        ("..", DOTDOT), ("../..", DOTDOT), ("raw/../..", DOTDOT), ("raw/../../site_b/raw", DOTDOT),
        ("work/../../site_b/raw/ds", DOTDOT), ("raw/ds/../../../..", DOTDOT),
        ("/etc", OUTSIDE), ("/etc/passwd", OUTSIDE), (str(other / "raw" / "ds"), OUTSIDE),
        (str(site) + "/../site_b/raw", OUTSIDE),
        ("work/link_other_site", LINK), ("work/link_etc", LINK), ("work/link_other_site/ds", LINK),
        ("ｒａｗ/ds", "look-alike"), ("raw／ds", "look-alike"), ("raw/ds\u0301", "look-alike"),
        ("r" * 300, "too long"), ("raw/" + "d/" * 600, "too long"), ("raw/ds\x00/../../etc", "NUL character"),
        ("..\\..\\etc", "'/' to separate"), ("raw\\ds", "'/' to separate"), ("", "non-empty"), ("   ", "non-empty"),
        ("<data>..</data>", DOTDOT), ("<data>/etc</data>", OUTSIDE), ("<data>raw/../../site_b/raw</data>", DOTDOT),
        ("<data>work/link_etc</data>", LINK),
    ]


@pytest.fixture()
def two_sites(tmp_path: Path) -> tuple[Workspace, Path]:
    for name, label in (("site_a", "A"), ("site_b", "B")):
        for i in range(2):
            path = tmp_path / name / "raw" / "ds" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (8, 8), 99).save(path)
    ws = Workspace.open(tmp_path / "site_a")
    (ws.work / "link_other_site").symlink_to(tmp_path / "site_b" / "raw")
    (ws.work / "link_etc").symlink_to("/etc")
    return ws, tmp_path / "site_b"


def test_every_escape_form_is_refused_by_every_path_tool(two_sites):
    ws, other = two_sites
    other_hash = tree_hash(other)
    tools = _tools(ws)
    assert set(PATH_TOOLS) <= set(tools)
    for name, extra in PATH_TOOLS.items():
        for form, refusal in _escape_forms(ws.site_dir, other):
            out = tools[name].invoke({"folder": form, **extra})
            assert isinstance(out, str), f"{name}({form[:40]!r}) was not refused: {str(out)[:200]}"
            assert re.search(refusal, out), f"{name}({form[:40]!r}) refused with the wrong reason: {out[:200]}"
            assert "Traceback" not in out and "root:" not in out
    assert tree_hash(other) == other_hash
    assert not (other / "work").exists()


def test_symlinked_files_inside_work_are_not_read(two_sites):
    ws, other = two_sites
    tools = _tools(ws)
    tools["organize_dataset"].invoke({"folder": "raw/ds", "label_level": 0})  # one class: named, as it must be
    os.symlink("/etc/hostname", ws.work / "organized" / "ds" / "A" / "leak.png")
    os.symlink(other / "raw" / "ds" / "B" / "0.png", ws.work / "organized" / "ds" / "A" / "theirs.png")
    assert tools["list_labels"].invoke({"folder": "work/organized/ds"})["n_images"] == 2
    assert tools["client_statistics"].invoke({"folder": "work/organized/ds"})["n_images"] == 2


def test_bad_arguments_come_back_as_messages(two_sites):
    ws, _ = two_sites
    tools = _tools(ws)
    out = tools["resize_images"].invoke({"folder": "work", "size": 3, "channels": "CMYK"})
    assert isinstance(out, str) and "Traceback" not in out
    assert "'size'" in out and ">= 16" in out and "'channels'" in out and "'RGB'" in out, out
    out = tools["apply_label_map"].invoke({"folder": "raw/ds", "mapping": "x", "target_classes": []})
    assert isinstance(out, str) and "'mapping'" in out and "'target_classes'" in out, out


def _full_pass(env, sites: Path) -> list[str]:
    """Every client tool on every site, as an agent would run them; the outputs as text."""
    outputs: list[str] = []
    task = next(t for t in env.key.tasks.values() if t.label_maps)
    for site_id, site in env.key.sites.items():
        tools = _tools(Workspace.open(sites / site_id))

        def call(name: str, tools: dict = tools, **kw) -> None:
            outputs.append(json.dumps(tools[name].invoke(kw)))

        call("read_data_cards")
        for ds in site.datasets:
            folder = f"raw/{ds.folder}"
            call("summarize_dataset", folder=folder)
            call("detect_layout", folder=folder)
            call("organize_dataset", folder=folder)
            if (sites / site_id / "work" / "organized" / ds.folder).is_dir():
                call("resize_images", folder=f"work/organized/{ds.folder}", size=48, channels="RGB")
                call("list_labels", folder=f"work/organized/{ds.folder}")
            mapping = task.label_maps.get(site_id, {}).get(ds.name)
            if mapping:
                present = {k: v for k, v in mapping.items()
                           if (sites / site_id / "work" / "organized" / ds.folder / k).is_dir()}
                call("apply_label_map", folder=f"work/organized/{ds.folder}", mapping=present,
                     target_classes=list(task.target_classes))
        if (sites / site_id / "work" / "harmonized").is_dir():
            call("client_statistics")
    return outputs


@pytest.mark.parametrize("modality", MODALITIES)
def test_full_pass_keeps_raw_unchanged_and_leaks_nothing(built_envs, tmp_path, modality):
    env = built_envs(modality)
    shutil.copytree(env.root / "sites", tmp_path / "sites", symlinks=True)
    sites = tmp_path / "sites"
    before = {s: tree_hash(sites / s / "raw") for s in env.key.sites}
    text = "\n".join(_full_pass(env, sites))
    assert any((sites / s / "work" / "harmonized").is_dir() for s in env.key.sites), "no map was applied"
    assert {s: tree_hash(sites / s / "raw") for s in env.key.sites} == before
    leaked = [i for i in env.key.identifiers if i in text]
    assert not leaked, f"identifiers in tool output: {leaked[:3]}"
    outside = DATA_SPAN.sub("", text)
    assert "IMPORTANT SYSTEM NOTE" not in outside and "203.0.113.7" not in outside
    assert "203.0.113.7" in text, "the planted injection should reach the agent, quoted as data"
    assert not PIXEL_LIKE.search(text), PIXEL_LIKE.search(text)
    assert "Traceback" not in text
