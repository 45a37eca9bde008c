"""Role agents are compiled once, when the graph is built: wiring errors fail the build, not a run."""

from __future__ import annotations

import pytest

from graphs import phases, roles
from graphs.roles import GUIDANCE, ROLES
from graphs.server import build_graph
from graphs.toolsets import declared_tools
from tests.graph_helpers import private_env, run_config

UNCLEAR = "Please train something useful on our chest X-rays."


def test_a_missing_prompt_fails_when_the_graph_is_built(monkeypatch, tmp_path):
    monkeypatch.setattr(roles, "PROMPTS", tmp_path)
    roles.prompt.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="S1"):
            build_graph()
    finally:
        roles.prompt.cache_clear()


def test_clashing_tool_names_fail_when_the_graph_is_built(monkeypatch):
    def doubled(code):
        tools = declared_tools(code)
        return tools + tools[:1]

    monkeypatch.setattr(phases, "declared_tools", doubled)
    with pytest.raises(ValueError, match="duplicate tool names"):
        build_graph()


def test_no_agent_is_compiled_while_the_graph_runs(built_envs, tmp_path, monkeypatch):
    compiled = []
    real = roles.build_role_agent

    def counting(*args, **kwargs):
        compiled.append(kwargs["role"])
        return real(*args, **kwargs)

    monkeypatch.setattr(roles, "build_role_agent", counting)
    graph = build_graph()
    assert sorted(compiled) == sorted(code for code in ROLES for _ in GUIDANCE)
    env = private_env(built_envs("xray"), tmp_path)
    state = graph.invoke({"request": UNCLEAR}, run_config(env, tmp_path / "run"))
    assert len(compiled) == len(ROLES) * len(GUIDANCE), "an agent was compiled during the run"
    s1 = state["outcomes"][0]
    assert s1["role"] == "S1" and not s1["success"] and "names no classes" in s1["reason"]
