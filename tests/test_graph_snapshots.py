"""The graphs' shapes, as Mermaid text, against stored snapshots (a wiring change shows up in review).

Refresh after an intended change: ``UPDATE_SNAPSHOTS=1 make test-fast``. A missing snapshot fails
(it is never written and then compared with itself); the failure names the refresh command.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphs.client import build_client_graph
from graphs.phases import build_role_agents
from graphs.roles import ROLES
from graphs.server import build_graph
from graphs.toolsets import declared_tools

SNAPSHOTS = Path(__file__).parent / "snapshots"
REFRESH = "UPDATE_SNAPSHOTS=1 make test-fast"


def check_snapshot(name: str, text: str, folder: Path = SNAPSHOTS) -> None:
    """Compare ``text`` with ``folder/name.mmd``; write it only when UPDATE_SNAPSHOTS is set."""
    path = folder / f"{name}.mmd"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    if not path.exists():
        pytest.fail(f"no snapshot {path}; if the graph {name!r} is new, write it with: {REFRESH}")
    assert text == path.read_text(), f"{name} changed; if intended, refresh with: {REFRESH}"


def test_server_graph_shape():
    check_snapshot("server", build_graph().get_graph().draw_mermaid())


def test_client_graph_shape():
    check_snapshot("client", build_client_graph().get_graph().draw_mermaid())


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_agent_is_compiled_with_its_real_tools(role):
    agent = build_role_agents()[(role, "fine-grained")]
    text = agent.get_graph().draw_mermaid()
    tools = [t.name for t in declared_tools(role)]
    assert all(name in text for name in tools), f"{role}'s snapshot does not list its tools {tools}"
    check_snapshot(f"role_agent_{role}", text)


def test_a_missing_snapshot_fails_and_names_the_refresh_command(tmp_path, monkeypatch):
    monkeypatch.delenv("UPDATE_SNAPSHOTS", raising=False)
    with pytest.raises(pytest.fail.Exception, match="UPDATE_SNAPSHOTS=1"):
        check_snapshot("server", "graph TD;", folder=tmp_path)
    assert not (tmp_path / "server.mmd").exists(), "a missing snapshot was written instead of failing"


def test_role_snapshots_differ_in_their_tools_not_only_the_submit_tool():
    agents = build_role_agents()
    shapes = {role: agents[(role, "fine-grained")].get_graph().draw_mermaid() for role in ("C1", "C2", "S4")}
    assert "read_data_cards" in shapes["C1"] and "organize_dataset" in shapes["C2"]
    assert "launch_training" in shapes["S4"] and "launch_training" not in shapes["C2"]
