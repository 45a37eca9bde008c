"""Run a training configuration by its algorithm's name: the caller that resolves names for ``fl_core``.

``fl_core`` takes an algorithm instance and never imports the registry; the command line, S4's
training jobs and tests that start from a :class:`fl_core.RunConfig` come through here.
"""

from __future__ import annotations

from algorithms.api import FLAlgorithm
from algorithms.registry import get_algorithm
from fl_core import RunConfig, RunResult
from fl_core import run as run_instance

__all__ = ["algorithm_for", "run"]


def algorithm_for(config: RunConfig) -> FLAlgorithm:
    """The instance ``config.algorithm`` names, with ``config.algorithm_params``.

    Raises:
        ValueError: unknown name (lists the registered ones), unknown hyper-parameter (lists the
            valid ones) or an invalid value.
    """
    return get_algorithm(config.algorithm, **config.algorithm_params)


def run(config: RunConfig, baselines: bool = False, transport: str = "direct") -> RunResult:
    """:func:`fl_core.run` with the algorithm resolved from ``config`` through the registry."""
    return run_instance(config, algorithm_for(config), baselines=baselines, transport=transport)
