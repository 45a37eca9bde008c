"""The server state holds only boundary messages: no paths, no identifiers, no answer key."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from graphs.server import build_graph
from tests.graph_helpers import private_env, run_config

FORBIDDEN_IMPORTS = ("envs.key", "envs.build", "envs.oracle", "envs.items", "envs.layouts", "envs.plan")


def test_graphs_never_import_the_answer_key_or_the_builder():
    for path in Path("graphs").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith(FORBIDDEN_IMPORTS), f"{path} imports {name}"


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
