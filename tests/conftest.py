"""Shared fixtures: small built environments, cached per test session (building is the slow part)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

#: Scale for environments built in tests: every messiness kind still appears at least once.
TEST_SCALE = 0.3

#: The longest test modules (summed test durations on one worker, estimated from a run on 2 busy cores on 2026-12-03), longest first.
#: ``--dist loadscope`` keeps a module on one worker and hands modules out in collection order, so
#: these go first and the many short modules fill both workers' ends; left to xdist's own order (most
#: tests first) the long one-test modules came last and one worker ran them while the other sat idle.
#: A module missing here only runs later (slow-marked modules before the rest); nothing is skipped.
LONGEST_MODULES: tuple[str, ...] = (
    "test_evals_full_suite.py", "test_graph_e2e_training.py", "test_learnability.py", "test_local_llm.py",
    "test_fl_on_envs.py", "test_graph_e2e.py", "test_evals_wrong_decisions.py", "test_fl_flower_deployment.py",
    "test_fl_flower_simulation.py", "test_fl_flower_faults.py", "test_fl_flower_interrupts.py",
    "test_fl_flower_restart.py", "test_evals_outcome_decisions.py", "test_graph_langgraph_dev.py",
    "test_run_kill_resume.py", "test_evals_replay.py", "test_fl_flower_units.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Keep the module order of :func:`pytest_collection_modifyitems` under ``--dist loadscope``
    (``--no-loadscope-reorder``; without xdist the option does not exist and nothing changes)."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest modules first (LONGEST_MODULES, then other modules with slow tests, then the rest).

    The sort is stable and by module, so a module's tests stay together and in their own order."""
    rank = {name: i for i, name in enumerate(LONGEST_MODULES)}
    slow = {item.path.name for item in items if item.get_closest_marker("slow")}

    def key(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        return (0, rank[name]) if name in rank else (1, 0) if name in slow else (2, 0)

    items.sort(key=key)


@pytest.fixture(scope="session")
def built_envs(tmp_path_factory: pytest.TempPathFactory):
    """modality -> BuiltEnv at TEST_SCALE, seed 0, built lazily on first use."""
    from envs.build import build

    cache: dict[str, object] = {}
    root: Path = tmp_path_factory.mktemp("envs")

    def get(modality: str):
        if modality not in cache:
            cache[modality] = build(modality, root / modality, seed=0, scale=TEST_SCALE)
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
