"""Local BatchNorm calibration (AdaBN) of the global model: what it changes and what it leaves alone."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fedagentbench.training import run
from fl_core import RunConfig
from fl_core.data import Split, load_federation, normalise
from fl_core.models import TinyCNN, create_model
from fl_core.testing import make_shape_folders
from fl_core.training import calibrate_batchnorm, evaluate
from tests.tensor_asserts import assert_same_tensors


def _split(n: int, seed: int, offset: float = 0.0) -> Split:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 3, 16, 16, generator=g) * 120 + offset).clamp(0, 255).to(torch.uint8)
    return Split(x, torch.zeros(n, dtype=torch.int64))


def test_calibration_sets_the_first_norm_to_the_sites_own_statistics() -> None:
    torch.manual_seed(0)
    model = TinyCNN(2, 3)
    before = {k: v.clone() for k, v in model.named_parameters()}
    bright = _split(40, 1, offset=120.0)
    assert calibrate_batchnorm(model, bright)
    conv, norm = model.body[0], model.body[1]
    with torch.no_grad():
        act = conv(normalise(bright.x))
    assert torch.allclose(norm.running_mean, act.mean(dim=(0, 2, 3)), atol=1e-4)
    assert torch.allclose(norm.running_var, act.var(dim=(0, 2, 3), unbiased=True), rtol=1e-3)
    assert norm.momentum == pytest.approx(0.1) and not model.training
    assert_same_tensors(before, dict(model.named_parameters()), what="weights after calibration")


def test_calibration_skips_models_without_batchnorm_and_tiny_splits() -> None:
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert not calibrate_batchnorm(plain, _split(8, 0))
    model = TinyCNN(2, 3)
    state = copy.deepcopy(model.state_dict())
    assert not calibrate_batchnorm(model, _split(1, 0))
    assert_same_tensors(state, model.state_dict(), what="a model too small a split cannot calibrate")


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    """Two clients of the shapes task; the second one's scanner makes every image 3x darker."""
    root = tmp_path_factory.mktemp("skew")
    dirs = make_shape_folders(root, clients=2, per_class=16, size=24, seed=3)
    for png in sorted((root / "site1").rglob("*.png")):
        arr = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32) / 3
        Image.fromarray(arr.astype(np.uint8)).save(png)
    return dirs


def test_engine_calibrates_only_the_evaluation_of_the_global_model(skewed, tmp_path) -> None:
    base = {"data_dirs": tuple(skewed), "image_size": 24, "rounds": 2, "batch_size": 8, "progress": False,
            "resume": False}
    plain = run(RunConfig(**base, out_dir=str(tmp_path / "none")))
    local = run(RunConfig(**base, out_dir=str(tmp_path / "local"), bn_calibration="local"))
    saved = [torch.load(tmp_path / d / "final_model.pt", weights_only=False)["global_state"] for d in ("none", "local")]
    assert_same_tensors(saved[0], saved[1], what="global model with and without calibration")  # same training

    cfg = RunConfig(**base, out_dir=str(tmp_path / "check"))
    data = load_federation(cfg.data_dirs, cfg.image_size, cfg.in_chans, cfg.val_fraction, cfg.test_fraction, cfg.seed)
    expected = []
    for client in data.clients:
        model = create_model(cfg.model, data.num_classes, cfg.in_chans)
        model.load_state_dict(saved[1])
        calibrate_batchnorm(model, client.train)
        expected.append(evaluate(model, client.test)[0]["loss"])
    got = [m["loss"] for m in local.global_metrics["clients"]]
    assert got == pytest.approx(expected, rel=1e-5)
    assert got != pytest.approx([m["loss"] for m in plain.global_metrics["clients"]], rel=1e-3)


def test_unknown_calibration_is_refused(tmp_path) -> None:
    dirs = make_shape_folders(tmp_path / "d", clients=1, per_class=2, size=16)
    with pytest.raises(ValueError, match="bn_calibration must be 'none' or 'local'"):
        RunConfig(data_dirs=tuple(dirs), bn_calibration="site")


def test_cli_passes_the_calibration_to_the_run(tmp_path, capsys) -> None:
    from fedagentbench.cli import main

    dirs = make_shape_folders(tmp_path / "d", clients=2, per_class=4, size=16)
    assert main(["train", "--data", *dirs, "--rounds", "1", "--image-size", "16", "--bn-calibration", "local",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["bn_calibration"] == "local"
    assert "test metrics after round 1" in capsys.readouterr().out


def test_calibration_keeps_dropout_off() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.9), nn.BatchNorm2d(4))
    split = _split(16, 2)
    calibrate_batchnorm(model, split)
    with torch.no_grad():
        act = model[0](normalise(split.x))
    assert torch.allclose(model[2].running_mean, act.mean(dim=(0, 2, 3)), atol=1e-4)
