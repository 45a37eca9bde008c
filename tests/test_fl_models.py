"""Models by name: the pooling option reaches the classifier, and max-keeping pooling finds small spots."""

from __future__ import annotations

import json

import pytest
import torch

from fl_core.config import GLOBAL_POOLS, RunConfig
from fl_core.models import create_model, features
from fl_core.testing import make_shape_folders


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18"])
@pytest.mark.parametrize("pool", GLOBAL_POOLS)
def test_every_pool_feeds_the_classifier(name: str, pool: str) -> None:
    model = create_model(name, 3, 1, global_pool=pool).eval()
    x = torch.randn(2, 1, 32, 32)
    feats, logits = features(model, x)
    assert logits.shape == (2, 3)
    assert feats.shape[1] == model.get_classifier().in_features
    widths = {p: create_model(name, 3, 1, global_pool=p).get_classifier().in_features for p in ("avg", pool)}
    assert widths[pool] == widths["avg"] * (2 if pool == "catavgmax" else 1)


@pytest.mark.parametrize("pool", GLOBAL_POOLS)
def test_the_tiny_cnn_pools_exactly_as_timm_does(pool: str) -> None:
    """The tiny CNN's own pooling (kept free of the timm import) gives timm's values for every choice."""
    from timm.layers import SelectAdaptivePool2d

    from fl_core.models import GlobalPool

    x = torch.randn(3, 8, 5, 7)
    theirs, ours = SelectAdaptivePool2d(pool_type=pool, flatten=True), GlobalPool(pool)
    assert torch.equal(ours(x), theirs(x))
    assert ours.feat_mult() == theirs.feat_mult()


def test_training_the_tiny_cnn_imports_neither_timm_nor_scikit_learn() -> None:
    """Every training job and Flower app is a fresh process; timm (with torchvision) would add ~1.4 s
    to each, scikit-learn (with scipy and pandas) ~1 s."""
    import subprocess
    import sys

    code = ("import sys; from fl_core.models import create_model; create_model('tiny_cnn', 2, 1); "
            "from fedagentbench.training import declare; import fl_core.engine; "
            "from fl_core.metrics import classification_metrics; import tools.job_process; "
            "print(sorted(m for m in ('timm', 'torchvision', 'sklearn', 'scipy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_unknown_pool_is_refused_with_the_choices(tmp_path) -> None:
    with pytest.raises(ValueError, match="catavgmax"):
        create_model("tiny_cnn", 2, global_pool="median")
    with pytest.raises(ValueError, match="global_pool"):
        RunConfig(data_dirs=(str(tmp_path),), global_pool="median")


def _spots(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise images; label 1 has one 2 x 2 bright spot somewhere (a lesion of a few pixels)."""
    x = torch.randn(n, 1, 32, 32, generator=gen) * 0.5
    y = torch.arange(n) % 2
    for i in torch.nonzero(y).flatten().tolist():
        r, c = torch.randint(0, 30, (2,), generator=gen).tolist()
        x[i, 0, r:r + 2, c:c + 2] += 2.0
    return x, y


def _train_and_score(pool: str) -> float:
    gen = torch.Generator().manual_seed(0)
    x, y = _spots(256, gen)
    xt, yt = _spots(128, gen)
    torch.manual_seed(0)
    model = create_model("tiny_cnn", 2, 1, global_pool=pool)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(4):
        for i in range(0, len(y), 32):
            loss = torch.nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return float((model(xt).argmax(1) == yt).float().mean())


def test_max_keeping_pool_finds_a_small_spot_that_averaging_dilutes() -> None:
    avg, catavgmax = _train_and_score("avg"), _train_and_score("catavgmax")
    assert catavgmax >= 0.9, f"catavgmax accuracy {catavgmax:.2f}"
    assert catavgmax > avg, f"catavgmax {catavgmax:.2f} vs avg {avg:.2f}"


def test_cli_passes_the_pooling_to_the_run(tmp_path) -> None:
    from fedagentbench.cli import main

    dirs = make_shape_folders(tmp_path / "d", clients=2, per_class=4, size=16)
    assert main(["train", "--data", *dirs, "--rounds", "1", "--image-size", "16", "--global-pool", "catavgmax",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["global_pool"] == "catavgmax"
