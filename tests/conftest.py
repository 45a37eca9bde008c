"""Shared fixtures: small built environments, cached per test session (building is the slow part)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: Scale for environments built in tests: every messiness kind still appears at least once.
TEST_SCALE = 0.3


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of built environments shared by every xdist worker of this pytest run.

    Under xdist each worker has its own base temp folder inside the run's; the cache sits in the
    run's, so an environment is built once per run, not once per worker (``evals.trial.ensure_env``
    locks each build). Built environments are read-only; tests that change one work on a copy.
    """
    import os

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = root / "built-envs"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="session")
def built_envs(env_cache: Path):
    """modality -> BuiltEnv at TEST_SCALE, seed 0, built (or taken from the shared cache) on first use."""
    from envs.build import load
    from evals.trial import ensure_env

    cache: dict[str, object] = {}

    def get(modality: str):
        if modality not in cache:
            cache[modality] = load(ensure_env(env_cache, modality, 0, TEST_SCALE))
        return cache[modality]

    return get


@pytest.fixture
def clients(tmp_path: Path) -> dict[str, Path]:
    """Two tiny clients with two learnable classes (bright vs dark squares)."""
    rng = np.random.default_rng(0)
    out = {}
    for site in ("site_01", "site_02"):
        for cls, level in (("dark", 60), ("bright", 190)):
            d = tmp_path / "data" / site / cls
            d.mkdir(parents=True)
            for i in range(10):
                arr = np.clip(level + rng.normal(0, 20, (16, 16)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
        out[site] = tmp_path / "data" / site
    return out


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow modules first (stable otherwise), so that ``--dist loadscope`` starts the long ones at once.

    With ``--no-loadscope-reorder`` (the Makefile's test targets) the scheduler hands modules out in
    collection order; by default it hands out the modules with the most tests first, and the one-test,
    3-minute full-suite module started last and ran alone at the end. Every worker collects the same
    order, which xdist requires.
    """
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]  # the scope loadscope groups by

    slow_modules = {module(item) for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: module(item) not in slow_modules)
