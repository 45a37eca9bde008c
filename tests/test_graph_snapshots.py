"""The graphs' shapes, as Mermaid text, against stored snapshots (a wiring change shows up in review).

Refresh after an intended change: ``UPDATE_SNAPSHOTS=1 make test-fast``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphs.agent import build_role_agent
from graphs.client import build_client_graph
from graphs.messages import OUTPUT_OF_ROLE
from graphs.server import build_graph
from graphs.testing import FakeToolCallingModel

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _check(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.mmd"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; if intended, refresh with UPDATE_SNAPSHOTS=1"


def test_server_graph_shape():
    _check("server", build_graph().get_graph().draw_mermaid())


def test_client_graph_shape():
    _check("client", build_client_graph().get_graph().draw_mermaid())


@pytest.mark.parametrize("role", sorted(OUTPUT_OF_ROLE))
def test_every_role_agent_has_the_same_loop(role):
    agent = build_role_agent(FakeToolCallingModel(replies=["x"]), [], role=role, system_prompt="p",
                             output=OUTPUT_OF_ROLE[role])
    _check(f"role_agent_{role}", agent.get_graph().draw_mermaid())
