"""A role agent ends cleanly, with a named failure or a result, whatever its model does."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool

import graphs.agent as agent_mod
from graphs.agent import build_role_agent
from graphs.messages import SelectionReply
from graphs.testing import FakeToolCallingModel

GOOD = {"site_id": "site_01", "selected": ["HAM10000"], "reason": "fits"}


@tool
def count_images(folder: str) -> int:
    """Count images in a folder."""
    if folder != "raw/ham":
        raise ValueError("no such folder; use 'raw/ham'")
    return 42


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(agent_mod, "BACKOFF_S", 0.0)


def run(replies, max_steps=6):
    model = FakeToolCallingModel(replies=replies)
    graph = build_role_agent(model, [count_images], role="C1", system_prompt="select", output=SelectionReply,
                             max_steps=max_steps, site_id="site_01")
    return graph.invoke({"messages": [HumanMessage("{}")]}), model


def tool_messages(state):
    return [m for m in state["messages"] if isinstance(m, ToolMessage)]


def test_a_good_model_submits_and_its_result_is_validated():
    state, _ = run([("count_images", {"folder": "raw/ham"}), ("submit_SelectionReply", GOOD)])
    assert state["result"] == GOOD and not state.get("failure")
    assert tool_messages(state)[0].content == "42"
    assert [u["tool_calls"] for u in state["usage"]] == [1, 1]


def test_bad_arguments_come_back_as_a_message_and_the_model_can_recover():
    state, _ = run([("count_images", {"folder": 7, "bogus": 1}), ("count_images", {"folder": "raw/x"}),
                    ("submit_SelectionReply", GOOD)])
    errors = [m.content for m in tool_messages(state)[:2]]
    assert all("error" in e.lower() for e in errors)
    assert "use 'raw/ham'" in errors[1]
    assert state["result"] == GOOD


def test_an_unknown_tool_is_answered_with_the_valid_names():
    state, _ = run([("delete_everything", {}), ("submit_SelectionReply", GOOD)])
    msg = tool_messages(state)[0].content
    assert "delete_everything" in msg and "count_images" in msg
    assert state["result"] == GOOD


def test_looping_past_the_step_limit_ends_with_step_limit():
    state, model = run([("count_images", {"folder": "raw/ham"})], max_steps=4)
    assert state["failure"] == "step_limit" and state.get("result") is None
    assert model.calls == 4


def test_malformed_structured_output_is_explained_then_fixed():
    bad = {"site_id": "site_01", "selected": "HAM10000"}  # not a list, no reason
    state, _ = run([("submit_SelectionReply", bad), ("submit_SelectionReply", GOOD)])
    assert "invalid" in tool_messages(state)[0].content.lower()
    assert state["result"] == GOOD


def test_prose_instead_of_tool_calls_is_nudged_then_a_format_error():
    state, model = run(["I think HAM10000 fits."])
    assert state["failure"] == "format_error"
    assert model.calls == agent_mod.MAX_NUDGES + 1
    assert any("submit_SelectionReply" in m.content for m in state["messages"] if isinstance(m, HumanMessage))


def test_provider_errors_are_retried_then_recorded():
    state, model = run([ConnectionError("503 from provider")])
    assert state["failure"] == "provider_error" and "503" in state["reason"]
    assert model.calls == agent_mod.RETRIES


def test_a_transient_provider_error_is_retried_transparently():
    state, _ = run([TimeoutError("slow"), ("submit_SelectionReply", GOOD)])
    assert state["result"] == GOOD


def test_a_model_without_bind_tools_is_refused_when_the_agent_is_built():
    with pytest.raises(ValueError, match="cannot bind tools"):
        build_role_agent(object(), [], role="S1", system_prompt="x", output=SelectionReply)
