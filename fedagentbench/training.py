"""Run a training configuration by its algorithm's name: the caller that resolves names for ``fl_core``.

``fl_core`` takes an algorithm instance and never imports the registry; the command line, S4's
training jobs and tests that start from a :class:`fl_core.RunConfig` come through here.
"""

from __future__ import annotations

from typing import Any

from algorithms.api import FLAlgorithm
from algorithms.registry import algorithm_class, get_algorithm
from fl_core import RunConfig, RunResult
from fl_core import run as run_instance

__all__ = ["algorithm_for", "check_algorithm", "declare", "run"]


def algorithm_for(config: RunConfig) -> FLAlgorithm:
    """The instance ``config.algorithm`` names, with ``config.algorithm_params``.

    Raises:
        ValueError: unknown name (lists the registered ones), unknown hyper-parameter (lists the
            valid ones) or an invalid value.
    """
    check_algorithm(config.algorithm, config.algorithm_params)
    return get_algorithm(config.algorithm, **config.algorithm_params)


def declare(config: RunConfig) -> RunConfig:
    """``config`` with ``shares`` set from the algorithm's catalog entry (what leaves a client beyond weights).

    The catalog, not the caller, decides it, so a run's ``summary.json`` always states the method's
    privacy cost; a value already in ``config`` is overwritten.
    """
    from algorithms.catalog import get_entry

    check_algorithm(config.algorithm, config.algorithm_params)
    shares = get_entry(config.algorithm.strip().lower()).shares
    return config if config.shares == shares else config.replace(shares=shares)


def run(config: RunConfig, baselines: bool = False, transport: str = "direct") -> RunResult:
    """:func:`fl_core.run` with the algorithm resolved from ``config`` through the registry.

    The config's ``shares`` is filled from the catalog first (:func:`declare`), so the report says
    what the method uploads beyond weights.
    """
    config = declare(config)
    return run_instance(config, algorithm_for(config), baselines=baselines, transport=transport)


def check_algorithm(name: str, params: dict[str, Any]) -> None:
    """Refuse an unknown algorithm or a bad hyper-parameter before any data is read.

    Types are checked against the algorithm's defaults (a number where a number is expected, an
    integer for counts), then the algorithm's own ``validate`` checks the ranges.

    Raises:
        ValueError: the message lists the registered algorithms, or the algorithm's parameters with
            their defaults.
    """
    cls = algorithm_class(name)
    key = cls.name
    defaults = cls().get_params()
    valid = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) or "none"
    if unknown := [k for k in params if k not in defaults]:
        cls().set_params(**{unknown[0]: None})  # raises, naming the valid parameters
    for k, v in params.items():
        want = _param_type(defaults[k])
        if want and not _is(v, want):
            raise ValueError(f"{key} hyper-parameter {k!r} must be {want}, got {v!r}; its hyper-parameters: {valid}")
    try:
        get_algorithm(key, **params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad hyper-parameters for {key}: {exc}; its hyper-parameters: {valid}") from None


def _param_type(default: Any) -> str | None:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    return None  # None or another type: the algorithm checks it


def _is(value: Any, want: str) -> bool:
    if want == "true or false":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if want == "an integer":
        return isinstance(value, int)
    if want == "a number":
        return isinstance(value, (int, float))
    return isinstance(value, str)
