"""The server state holds only boundary messages: no paths, no identifiers, no answer key."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import graphs
from graphs.server import build_graph
from tests.graph_helpers import private_env, run_config

FORBIDDEN_IMPORTS = ("envs.key", "envs.build", "envs.oracle", "envs.items", "envs.layouts", "envs.plan")


def forbidden_imports(package: Path) -> tuple[list[Path], list[str]]:
    """Every .py file under ``package`` and each import in them of a forbidden module."""
    files = sorted(package.rglob("*.py"))
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(package.parent)} imports {n}" for n in names if n.startswith(FORBIDDEN_IMPORTS)]
    return files, found


def test_graphs_never_import_the_answer_key_or_the_builder():
    package = Path(graphs.__file__).resolve().parent  # the package, wherever pytest runs from
    files, found = forbidden_imports(package)
    expected = {"server.py", "agent.py", "client.py", "phases.py", "lexicon.py", "roles.py"}
    assert expected <= {f.name for f in files}, f"the scan saw only {[f.name for f in files]} under {package}"
    assert not found, found


def test_the_import_scan_finds_a_planted_forbidden_import(tmp_path):
    package = tmp_path / "graphs"
    (package / "scripted").mkdir(parents=True)
    (package / "scripted" / "peek.py").write_text("from envs.key import AnswerKey\nimport envs.oracle as o\n")
    _, found = forbidden_imports(package)
    assert found == ["graphs/scripted/peek.py imports envs.key", "graphs/scripted/peek.py imports envs.oracle"]


@pytest.mark.slow
def test_a_full_run_keeps_paths_identifiers_and_injected_text_out_of_the_server_state(built_envs, tmp_path):
    built = built_envs("mri")
    env = private_env(built, tmp_path)
    request = next(iter(built.key.tasks.values())).request
    state = build_graph().invoke({"request": request}, run_config(env, tmp_path / "run"))
    text = json.dumps({k: v for k, v in state.items() if k not in ("usage", "events")}, default=str)
    assert str(env) not in text and "/sites/" not in text and "raw/" not in text
    assert not [i for i in built.key.identifiers if i in text]
    assert built.key.injection_text not in text
    assert state["training"]["status"] == "finished"
