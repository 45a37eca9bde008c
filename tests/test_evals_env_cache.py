"""A shared environment cache: processes that ask for the same build at once get one good build.

Two evals with one ``--env-cache`` (and the test workers, tests/conftest.py) call
``evals.trial.ensure_env`` for the same (modality, seed, scale) at the same moment. Without the lock
each rebuilds the folder over the other (``force=True``), which fails or leaves a mixed tree.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from envs.build import build, load
from envs.readonly import tree_hash
from evals.trial import ensure_env

SCALE = 0.1


def test_two_processes_asking_for_one_environment_at_once_get_one_complete_build(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        got = list(pool.map(ensure_env, [cache] * 2, ["xray"] * 2, [0] * 2, [SCALE] * 2))
    assert got[0] == got[1]
    env = load(got[0])
    assert (env.key.modality, env.key.seed, env.key.scale) == ("xray", 0, SCALE)
    alone = build("xray", tmp_path / "alone", seed=0, scale=SCALE)
    for part in ("sites", "key"):
        assert tree_hash(got[0] / part) == tree_hash(alone.root / part), part


def test_a_cached_environment_is_reused_not_rebuilt(tmp_path: Path) -> None:
    first = ensure_env(tmp_path, "xray", 0, SCALE)
    stamp = (first / "key" / "answer_key.json").stat().st_mtime_ns
    assert ensure_env(tmp_path, "xray", 0, SCALE) == first
    assert (first / "key" / "answer_key.json").stat().st_mtime_ns == stamp
