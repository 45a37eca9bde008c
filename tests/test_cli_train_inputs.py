"""``fedagentbench train`` on bad inputs: unreadable images are skipped and counted (a folder with none
readable is refused, naming its files), and a bad algorithm or hyper-parameter is refused before any
image is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedagentbench.cli import main
from fedagentbench.cli.exit_codes import USAGE
from fl_core.data import load_federation


def _clients(root: Path, n: int = 6) -> list[Path]:
    rng = np.random.default_rng(0)
    dirs = []
    for site in ("site_a", "site_b"):
        for cls, level in (("dark", 60), ("bright", 190)):
            d = root / site / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.clip(level + rng.normal(0, 20, (16, 16)), 0, 255).astype(np.uint8)).save(d / f"{i}.png")
        dirs.append(root / site)
    return dirs


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    path.write_bytes(b"this is not an image" * 10)


def _train(dirs: list[Path], out: Path, *extra: str) -> int:
    return main(["train", "--data", *map(str, dirs), "--rounds", "1", "--image-size", "16", "--batch-size", "8",
                 "--quiet", "--out", str(out), *extra])


def test_a_truncated_image_is_skipped_and_counted(tmp_path, capsys):
    dirs = _clients(tmp_path / "data")
    _truncate(dirs[0] / "dark" / "3.png")
    assert _train(dirs, tmp_path / "out") == 0
    printed = capsys.readouterr().out
    assert "skipped 1 unreadable image" in printed and "dark/3.png" in printed
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (entry,) = summary["skipped_images"]
    assert entry["client_id"] == 0 and entry["count"] == 1 and entry["files"][0].startswith("dark/3.png")
    assert summary["train_images"] > 0


def test_loading_counts_each_unreadable_file_and_keeps_the_rest(tmp_path):
    dirs = _clients(tmp_path / "data")
    _truncate(dirs[1] / "bright" / "0.png")
    _garble(dirs[1] / "dark" / "5.png")
    data = load_federation([str(d) for d in dirs], image_size=16)
    a, b = data.clients
    assert a.skipped == () and len(b.skipped) == 2
    assert sum(map(len, (b.train, b.val, b.test))) == 10 and sum(map(len, (a.train, a.val, a.test))) == 12
    assert any("UnidentifiedImageError" in s for s in b.skipped)


def test_a_folder_with_no_readable_image_is_refused_naming_a_file(tmp_path, capsys):
    dirs = _clients(tmp_path / "data", n=2)
    for p in dirs[1].rglob("*.png"):
        _garble(p)
    assert _train(dirs, tmp_path / "out") == USAGE
    err = capsys.readouterr().err
    assert "none of the 4 images" in err and "site_b" in err and ".png" in err and "Traceback" not in err


@pytest.mark.parametrize(("extra", "expect"), [
    (["--algorithm", "fedfoo"], "registered: "),
    (["--algorithm", "fedprox", "--param", "nonsense=1"], "valid: ['mu']"),
    (["--algorithm", "fedprox", "--param", "mu=abc"], "'mu' must be a number"),
    (["--algorithm", "fedprox", "--param", "mu=-1"], "mu must be >= 0"),
    (["--algorithm", "fedrep", "--param", "head_epochs=2.5"], "must be an integer"),
    (["--param", "novalue"], "KEY=VALUE"),
])
def test_bad_algorithm_arguments_are_refused_before_any_image_is_read(tmp_path, capsys, extra, expect):
    dirs = _clients(tmp_path / "data", n=2)
    for p in (tmp_path / "data").rglob("*.png"):  # every image unreadable: reading them would fail first
        _garble(p)
    assert _train(dirs, tmp_path / "out", *extra) == USAGE
    err = capsys.readouterr().err
    assert expect in err and "can be read" not in err
    assert not (tmp_path / "out").exists()
