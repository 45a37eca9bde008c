"""End to end with the scripted policy: every role passes against the answer key and the raw data is
untouched, on every modality. The trained model itself (beats chance; S4 on Flower processes):
test_graph_e2e_training.py, a module of its own so that ``--dist loadscope`` can run it on the other
worker.
"""

from __future__ import annotations

import pytest

from envs.concepts import MODALITIES
from envs.readonly import tree_hash
from tests.graph_helpers import TEST_TRAIN, private_env, run_and_score

pytestmark = pytest.mark.slow
#: The task each modality's end-to-end test runs.
TASK = {"dermatoscopy": "derm-binary-cancer", "fundus": "fundus-referable-dr", "histopathology": "histo-tumor-detection",
        "mri": "mri-tumor-present", "ultrasound": "us-benign-malignant", "xray": "xray-pneumonia"}


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_role_passes_and_raw_data_is_untouched(built_envs, tmp_path, modality):
    built = built_envs(modality)
    env = private_env(built, tmp_path)
    raw_before = {s: tree_hash(env / "sites" / s / "raw") for s in built.key.sites}
    _state, scores = run_and_score(built, env, tmp_path / "run", TASK[modality], TEST_TRAIN)
    failed = {r: s.explanation for r, s in scores.items() if not s.passed}
    assert not failed, failed
    assert {s: tree_hash(env / "sites" / s / "raw") for s in built.key.sites} == raw_before
