"""fl_core: the federated-learning runtime (plain PyTorch).

Public API::

    from fl_core import RunConfig, run
    result = run(RunConfig(data_dirs=("site_a", "site_b"), algorithm="fedavg", rounds=5))
"""

from __future__ import annotations

from fl_core.config import RunConfig
from fl_core.result import RunResult

__all__ = ["RunConfig", "RunResult", "run"]


def run(config: RunConfig, baselines: bool = False) -> RunResult:
    """Run (or resume) federated training as ``config`` says; write reports to ``config.out_dir``.

    Args:
        config: the run configuration.
        baselines: also train local-only and pooled baselines on the same splits and model; their
            results go to ``result.baselines`` and ``summary.json``.
    """
    from fl_core.config import check_algorithm
    from fl_core.engine import Engine, load_data

    check_algorithm(config.algorithm, config.algorithm_params)  # before any image is read
    data = load_data(config)
    result = Engine(config, data).run()
    if baselines:
        from fl_core import report
        from fl_core.baselines import run_baselines

        result.baselines = run_baselines(config, data)
        report.write_all(result)
    return result
