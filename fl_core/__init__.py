"""fl_core: the federated-learning runtime (plain PyTorch).

Public API::

    from algorithms.registry import get_algorithm
    from fl_core import RunConfig, run
    cfg = RunConfig(data_dirs=("site_a", "site_b"), algorithm="fedprox", algorithm_params={"mu": 0.1})
    result = run(cfg, get_algorithm(cfg.algorithm, **cfg.algorithm_params))

``fl_core`` depends only on the algorithm contract (``algorithms.api``), never on the registry or a
concrete algorithm: callers resolve names (``fedagentbench.training.run`` does it for a config).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fl_core.config import RunConfig
from fl_core.result import RunResult

if TYPE_CHECKING:
    from algorithms.api import FLAlgorithm

__all__ = ["RunConfig", "RunResult", "run"]


def run(config: RunConfig, algorithm: FLAlgorithm, baselines: bool = False, transport: str = "direct") -> RunResult:
    """Run (or resume) federated training as ``config`` says; write reports to ``config.out_dir``.

    Args:
        config: the run configuration.
        algorithm: the instance ``config.algorithm`` names (with ``config.algorithm_params``).
        baselines: also train local-only and pooled baselines on the same splits and model; their
            results go to ``result.baselines`` and ``summary.json``.
        transport: ``"direct"`` or ``"serialising"`` (see :mod:`fl_core.transport`); in-process only.

    ``config.engine`` picks the runtime: in this process (default), or Flower's simulation runtime or
    a loopback deployment (a SuperLink and one SuperNode process per site), see ``fl_core.flower``.
    """
    from fl_core.engine import Engine, load_data

    if config.engine == "inprocess":
        data = load_data(config)
        result = Engine(config, data, algorithm, transport).run()
    else:  # Flower: every site's data is loaded by its own node; the baselines need it all here
        from fl_core.flower.launch import run_flower

        result = run_flower(config, algorithm)
        data = load_data(config) if baselines else None
    if baselines:
        from fl_core import report
        from fl_core.baselines import run_baselines

        result.baselines = run_baselines(config, data)
        report.write_all(result)
    return result
