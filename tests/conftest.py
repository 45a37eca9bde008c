"""Shared fixtures: small built environments, cached per test session (building is the slow part)."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Scale for environments built in tests: every messiness kind still appears at least once.
TEST_SCALE = 0.3


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
