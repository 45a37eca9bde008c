"""Where the local LLM's weights, llama.cpp sources and server binary live (outside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

#: Overrides the cache root (CI can point it at a cached folder).
CACHE_ENV = "FEDAGENTBENCH_CACHE"
#: Path of an already built ``llama-server`` to use instead of building one.
SERVER_BIN_ENV = "FEDAGENTBENCH_LLAMA_SERVER"


def cache_dir() -> Path:
    """The cache root: ``$FEDAGENTBENCH_CACHE`` or ``~/.cache/fedagentbench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fedagentbench").expanduser()


def wheels_dir() -> Path:
    return cache_dir() / "wheels"


def models_dir() -> Path:
    return cache_dir() / "models"


def llama_src_dir() -> Path:
    return cache_dir() / "src"


def llama_build_dir() -> Path:
    return cache_dir() / "build"


def server_binary() -> Path:
    """The ``llama-server`` binary: ``$FEDAGENTBENCH_LLAMA_SERVER`` or the one ``llm setup`` builds."""
    override = os.environ.get(SERVER_BIN_ENV)
    return Path(override) if override else llama_build_dir() / "bin" / "llama-server"
