"""The scripted policy meets unclear requests and tools that refuse: it says why it stops, never crashes.

A policy exception is a bug of the player, not a provider hiccup: it is its own failure
(``policy_error``), recorded once, not retried.
"""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import StructuredTool, ToolException

import graphs.agent as agent_mod
from graphs.agent import build_role_agent
from graphs.messages import OUTPUT_OF_ROLE
from graphs.scripted import roles  # noqa: F401  (registers the policies)
from graphs.scripted.model import POLICIES, ScriptedChatModel

SPEC = {"modality": "xray", "task_type": "classification", "body_part": "chest", "implicit_goals": [],
        "constraints": [], "target_classes": [{"name": "normal", "includes": ["normal"]},
                                              {"name": "pneumonia", "includes": ["pneumonia"]}]}


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch):
    monkeypatch.setattr(agent_mod, "BACKOFF_S", 0.0)


def refusing(name: str, text: str) -> StructuredTool:
    def refuse(**_: object) -> str:
        raise ToolException(text)

    return StructuredTool.from_function(refuse, name=name, description=f"{name} (refuses)", handle_tool_error=True)


def answering(name: str, value: object) -> StructuredTool:
    def answer(**_: object) -> str:
        return json.dumps(value)

    return StructuredTool.from_function(answer, name=name, description=name, handle_tool_error=True)


def play(role: str, tools: list, payload: dict) -> dict:
    agent = build_role_agent(ScriptedChatModel(), tools, role=role, system_prompt="play", output=OUTPUT_OF_ROLE[role])
    return agent.invoke({"messages": [HumanMessage(json.dumps(payload))]})


@pytest.mark.parametrize("request_text, says", [
    ("Please train something useful on our chest X-rays.", ["xray", "chest", "pneumonia", "Findings I know"]),
    ("Build me a good model for the hospital.", ["imaging modality", "dermatoscopy", "xray"]),
])
def test_s1_answers_an_unparsable_request_with_what_it_understood_and_how_to_phrase_it(request_text, says):
    state = play("S1", [], {"request": request_text})
    assert state.get("result") is None
    assert state["failure"] == "format_error", state.get("reason")
    for word in says:
        assert word in state["reason"], f"{word!r} missing from {state['reason']!r}"


def test_c3_stops_with_the_refusal_when_a_tool_refuses_instead_of_crashing():
    cards = {"datasets": [{"name": "chest_a", "folder": "raw/chest_a", "labels": ["NORMAL", "PNEUMONIA"]}]}
    refusal = "folder 'work/organized/chest_a' does not exist; organise the dataset first"
    tools = [answering("read_data_cards", cards), refusing("list_labels", refusal),
             answering("apply_label_map", {}), answering("client_statistics", {})]
    state = play("C3", tools, {"site_id": "site_01", "task_spec": SPEC,
                               "selection": {"site_id": "site_01", "selected": ["chest_a"], "reason": "fits"}})
    assert state.get("result") is None and state["failure"] == "format_error"
    assert "list_labels refused" in state["reason"] and "organise the dataset first" in state["reason"]


def test_s4_reports_a_failed_run_when_the_status_tool_refuses():
    refusal = "no job 'job_001_abcdef'; known jobs: none (launch one first)"
    tools = [answering("launch_training", {"job_id": "job_001_abcdef", "state": "running"}),
             refusing("training_status", refusal), answering("stop_training", {}), answering("training_report", {})]
    state = play("S4", tools, {"algorithm": {"algorithm": "fedavg"}, "sites": ["site_01"], "task_spec": SPEC,
                               "settings": {"rounds": 1}})
    assert not state.get("failure"), state.get("reason")
    assert state["result"]["status"] == "failed" and refusal in state["result"]["notes"]


def test_a_crash_in_the_policy_is_a_policy_error_recorded_once_not_retried(monkeypatch):
    calls = []

    def buggy(t):
        calls.append(1)
        return t.last("read_data_cards").get("datasets")  # a bug: nothing was read yet

    monkeypatch.setitem(POLICIES, "SelectionReply", buggy)
    state = play("C1", [answering("read_data_cards", {})], {"site_id": "site_01", "task_spec": SPEC})
    assert state["failure"] == "policy_error" and "AttributeError" in state["reason"]
    assert len(calls) == 1, "a policy crash was retried like a provider error"
