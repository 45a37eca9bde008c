"""Settings of the Flower engines that do not change a run's result (timeouts, polling, ports)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fl_core.config import RunConfig

__all__ = ["SPEC_NAME", "FlowerOptions", "load_spec", "write_spec"]

#: The file in the run folder that tells the ServerApp what to run (its run config names it).
SPEC_NAME = "flower_run.json"


@dataclass(frozen=True)
class FlowerOptions:
    """How a Flower run waits and polls.

    Attributes:
        connect_timeout: seconds the server waits for every site's SuperNode to connect; then the
            run fails naming the sites that never did.
        round_timeout: seconds a train or evaluate exchange waits for replies. A site that has not
            replied by then (or whose SuperNode the SuperLink reports offline, or which replied with
            an error) is dropped: the round goes on with the others if at least ``min_clients``
            replied, else the run fails naming the sites that did not.
        poll_interval: seconds between the server's checks for replies, and (``fl node``) between a
            SuperNode's requests for messages. Flower's own fixed 3 s waits are most of the fixed
            cost per round on loopback.
        superexec_poll_interval: seconds between a SuperExec's checks for tasks (Flower's
            ``FLWR_SUPEREXEC_TASK_POLL_INTERVAL``, default 1 s).
        fork_server: fork each SuperNode's per-message ClientApp process, and a deployment's
            per-run ServerApp process, from a warm parent (:mod:`fl_core.flower.zygote`) instead of
            starting Python and importing torch anew.
    """

    connect_timeout: float = 120.0
    round_timeout: float = 600.0
    poll_interval: float = 0.1
    superexec_poll_interval: float = 0.1
    fork_server: bool = True

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name != "fork_server" and not getattr(self, f.name) > 0:
                raise ValueError(f"FlowerOptions.{f.name} must be > 0 seconds, got {getattr(self, f.name)}")


def write_spec(cfg: RunConfig, options: FlowerOptions, state_root: str, algorithm: dict[str, Any]) -> Path:
    """Write the run's configuration for the ServerApp into the run folder; returns the file.

    Args:
        algorithm: the algorithm's class path and hyper-parameters (``fl_core.flower.site.algorithm_ref``):
            the ServerApp and every ClientApp build their own instance from it.
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = {"config": cfg.to_dict(), "options": dataclasses.asdict(options), "state_root": state_root,
            "algorithm": algorithm}
    target = out / SPEC_NAME
    target.write_text(json.dumps(spec, indent=2))
    return target


def load_spec(path: str | Path) -> tuple[RunConfig, FlowerOptions, dict[str, Any]]:
    """Inverse of :func:`write_spec`."""
    spec = json.loads(Path(path).read_text())
    cfg = spec["config"]
    cfg["data_dirs"] = tuple(cfg["data_dirs"])
    return RunConfig(**cfg), FlowerOptions(**spec["options"]), spec
