"""What a run needs besides its state: paths and settings that never enter the agents' messages.

The server state holds only boundary messages. Where a site's folder is, where training writes,
which model plays and with which prompt style: these live in the run's ``config["configurable"]``
and are read here, on the side of the system (not the agents).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from graphs.roles import Guidance


@dataclass(frozen=True)
class Runtime:
    env_dir: Path
    run_dir: Path
    model: BaseChatModel
    guidance: Guidance
    approve: str  # "auto" | "ask"
    train: dict[str, Any]  # defaults for launch_training (rounds, local epochs, ...)

    def site_dir(self, site_id: str) -> Path:
        if not site_id.replace("_", "").isalnum():
            raise ValueError(f"bad site id {site_id!r}")
        return self.env_dir / "sites" / site_id

    def site_ids(self) -> list[str]:
        return list(json.loads((self.env_dir / "server" / "sites.json").read_text())["sites"])


def _from_environment() -> dict[str, str]:
    """Defaults for servers (``langgraph dev``) that cannot pass objects in the config."""
    names = {"env_dir": "FEDAGENTBENCH_ENV_DIR", "run_dir": "FEDAGENTBENCH_RUN_DIR", "model": "FEDAGENTBENCH_MODEL",
             "guidance": "FEDAGENTBENCH_GUIDANCE"}
    return {k: os.environ[v] for k, v in names.items() if os.environ.get(v)}


def runtime(config: RunnableConfig | None) -> Runtime:
    """The run's :class:`Runtime` from its config (ValueError names what is missing)."""
    conf = {**_from_environment(), **(config or {}).get("configurable", {})}
    missing = [k for k in ("env_dir", "run_dir") if k not in conf]
    if missing:
        raise ValueError(f"the run's config lacks {missing}; pass them in config['configurable'] or set "
                         "FEDAGENTBENCH_ENV_DIR / FEDAGENTBENCH_RUN_DIR")
    conf.setdefault("model", "scripted")
    from graphs.models import make

    model = conf["model"] if isinstance(conf["model"], BaseChatModel) else make(str(conf["model"]))
    return Runtime(Path(conf["env_dir"]), Path(conf["run_dir"]), model, conf.get("guidance", "fine-grained"),
                   conf.get("approve", "auto"), dict(conf.get("train", {})))
