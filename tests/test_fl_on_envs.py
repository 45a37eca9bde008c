"""FedAvg learns on every modality's built environment (oracle-prepared, tiny CNN, 5 rounds).

Each test builds one environment at ``SCALE``, oracle-prepares one task (the clean images of the
qualifying sites, what perfect preprocessing would give), runs FedAvg with the ``small-sites``
preset for five rounds and asserts balanced accuracy on the pooled test split clearly above chance.
Tasks are the ones with the most sites and images per modality (ultrasound: its binary task, the
three-class one stays at chance). Fundus passes once each site re-estimates the global model's
BatchNorm statistics (``bn_calibration="local"``; its scanner styles are the cause). Modalities where
FedAvg stays at chance in five rounds even though pooled or IID training learns are marked ``xfail``
with the measured figures and the cause found: the environment's label skew (MRI) or a task the tiny
CNN barely learns (dermatoscopy) -- properties of envs, not of fl_core.
"""

from __future__ import annotations

import pytest

from envs.build import build
from envs.oracle import prepare_task
from fl_core import run
from fl_core.presets import small_sites

#: Environment scale for these tests: large enough for a test split of tens of images per class.
SCALE = 0.5
#: Modalities whose qualifying sites are too few at ``SCALE`` (x-ray TB: 3 sites, 120 images;
#: ultrasound benign/malignant: 0.50 at 0.5, 0.70 at 1.0).
SCALE_FOR = {"xray": 1.0, "ultrasound": 1.0, "fundus": 1.0}

#: Measured at scale 1.0, seed 0, tiny CNN, small-sites preset (2026-11-29). "IID" is the same images
#: reshuffled over the same number of equally sized clients; "no styles" rebuilds the environment with
#: scanner-style strength ~0. Both isolate the cause: the environments' heterogeneity, not fl_core.
_DERM = ("FedAvg 0.50-0.53, pooled 0.54-0.70, local-only 0.57-0.62: the benign/malignant grouping of six "
         "lesion types is barely learnable by the tiny CNN in 15 epochs (a 4-block CNN: pooled 0.66). Tried "
         "2026-11-30 at scale 0.5: local BatchNorm calibration 0.505, 128 px 0.565, 4 blocks 0.522, renderer "
         "difficulty 0.3 instead of 0.6: 0.597 (0.644 calibrated), pooled then 0.63-0.76")
_MRI = ("FedAvg 0.15-0.27 (SGD or Adam, lr 3e-4..1e-3, 1 or 3 local epochs, class-balanced loss, per-image "
        "normalisation; 30 rounds of 1 SGD epoch 0.14-0.26; 128 px or scale 2: 0.14-0.15), IID 0.68, no styles "
        "0.25, pooled 0.66: sites hold 1-2 dominant tumour types (pathological label skew); the global model "
        "collapses to predicting the largest class, while SCAFFOLD, built for client drift, reaches 0.38 in 5 rounds. "
        "Not BatchNorm (2026-11-30): statistics re-estimated per site 0.25-0.28, over all sites 0.16; Dirichlet "
        "alpha 3 instead of 0.9: 0.24-0.32. The binary mri-tumor-present task: 0.61 (2 sites, scale 1), 0.63 "
        "(3 sites, scale 2), below 0.65")

#: Fundus sites' scanner styles (feature skew) leave FedAvg's weights good but its averaged BatchNorm
#: statistics fit no site: with them every site's images get one class (0.56 at scale 1, 0.50-0.58 with
#: other optimisers; pooled 0.77, IID 0.78, no styles 0.75). Each site re-estimating the statistics on its
#: own training images (``bn_calibration="local"``, AdaBN) gives 0.81 at scale 1 (0.69 at 0.5, hence scale 1).
FUNDUS_OVERRIDES = {"bn_calibration": "local"}

#: modality -> (task, RunConfig overrides, xfail reason or None)
CASES: dict[str, tuple[str, dict, str | None]] = {
    "histopathology": ("histo-tumor-detection", {}, None),
    "xray": ("xray-tb-skewed", {}, None),
    "ultrasound": ("us-benign-malignant", {}, None),
    "dermatoscopy": ("derm-binary-cancer", {}, _DERM),
    "fundus": ("fundus-referable-dr", FUNDUS_OVERRIDES, None),
    "mri": ("mri-tumor-type", {}, _MRI),
}


def _param(modality: str) -> object:
    task, overrides, reason = CASES[modality]
    marks = [pytest.mark.slow] + ([pytest.mark.xfail(reason=reason, strict=False)] if reason else [])
    return pytest.param(modality, task, overrides, id=modality, marks=marks)


@pytest.mark.parametrize(("modality", "task", "overrides"), [_param(m) for m in CASES])
def test_fedavg_learns_above_chance(modality: str, task: str, overrides: dict, tmp_path) -> None:
    scale = SCALE_FOR.get(modality, SCALE)
    env = build(modality, tmp_path / "env", seed=0, scale=scale)
    folders = prepare_task(env, task, tmp_path / "prepared", size=64)
    assert len(folders) >= 2, f"{task} needs at least two qualifying sites at scale {scale}"
    n_classes = len(env.key.tasks[task].target_classes)
    result = run(small_sites(folders, algorithm="fedavg", rounds=5, out_dir=str(tmp_path / "run"),
                             progress=False, resume=False, **overrides))
    bal_acc = result.global_metrics["overall"]["balanced_accuracy"]
    assert bal_acc >= 1 / n_classes + 0.15, f"{modality}/{task}: balanced accuracy {bal_acc:.3f}"
