"""The dependency direction: fl_core depends on the contract only; the contract on nothing of fl_core."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import sys
import {module}
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("algorithms", "fl_core"))))
"""


def _loaded(module: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], cwd=REPO, check=True,
                         capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=120)
    return set(out.stdout.split())


def test_engine_loads_neither_the_registry_nor_any_algorithm() -> None:
    loaded = _loaded("fl_core.engine")
    algorithms = {m for m in loaded if m.startswith("algorithms")}
    assert algorithms <= {"algorithms", "algorithms.api", "algorithms.aggregation", "algorithms.wire"}, algorithms


def test_contract_loads_nothing_of_fl_core() -> None:
    loaded = _loaded("algorithms.api")
    assert not {m for m in loaded if m.startswith("fl_core")}, loaded
    every = _loaded("algorithms.catalog")  # the registry with every algorithm module
    assert not {m for m in every if m.startswith("fl_core")}, "an algorithm module imports fl_core"
