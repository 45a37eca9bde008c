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
    varied = [("count_images", {"folder": f"raw/{k}"}) for k in ("ham", "x", "y", "z", "w")]
    state, model = run(varied, max_steps=4)
    assert state["failure"] == "step_limit" and state.get("result") is None
    assert model.calls == 4


def test_the_same_call_with_the_same_answer_three_times_ends_the_role_early():
    state, model = run([("count_images", {"folder": "raw/x"})], max_steps=40)
    assert state["failure"] == "repeated_call" and "count_images" in state["reason"]
    assert model.calls == agent_mod.MAX_REPEATS


def test_a_repeated_call_whose_answer_changes_is_not_a_loop(monkeypatch):
    answers = iter(["round 1 of 3", "round 2 of 3", "round 3 of 3", "done"])

    @tool
    def training_status(job_id: str) -> str:
        """Poll a job."""
        return next(answers)

    model = FakeToolCallingModel(replies=[("training_status", {"job_id": "j"})] * 4 + [
        ("submit_SelectionReply", GOOD)])
    graph = build_role_agent(model, [training_status], role="S4", system_prompt="poll", output=SelectionReply,
                             max_steps=10)
    state = graph.invoke({"messages": [HumanMessage("{}")]})
    assert state["result"] == GOOD and not state.get("failure")


@pytest.mark.parametrize("text", [
    '{"name": "count_images", "arguments": {"folder": "raw/ham"}}',
    'I will count.\n```json\n{"name": "count_images", "arguments": {"folder": "raw/ham"}}\n```',
    '{"name": "count_images", "parameters": "{\\"folder\\": \\"raw/ham\\"}"}',
])
def test_a_call_written_as_json_text_is_taken_and_counted_as_a_format_slip(text):
    state, _ = run([text, ("submit_SelectionReply", GOOD)])
    assert tool_messages(state)[0].content == "42"
    assert state["result"] == GOOD and not state.get("failure")
    assert [u.get("format_slips", 0) for u in state["usage"]] == [1, 0]
    assert [u["tool_calls"] for u in state["usage"]] == [1, 1]


def test_a_json_call_to_a_tool_that_does_not_exist_is_answered_with_the_valid_names():
    state, _ = run(['{"name": "fedavg", "arguments": {"algorithm": "fedavg"}}', ("submit_SelectionReply", GOOD)])
    msg = tool_messages(state)[0].content
    assert "fedavg" in msg and "submit_SelectionReply" in msg
    assert state["result"] == GOOD


@pytest.mark.parametrize("text", ['{"name": "rm_rf"}', '{"folder": "raw/ham"}', "count {it}"])
def test_json_text_that_is_not_call_shaped_stays_prose(text):
    state, _ = run([text])
    assert state["failure"] == "format_error"
    assert not tool_messages(state)


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


UNPARSABLE_500 = RuntimeError("Error code: 500 - Failed to parse tool call arguments as JSON: missing closing quote")


def test_a_tool_call_the_server_cannot_parse_is_told_to_the_model_not_retried():
    state, model = run([UNPARSABLE_500, ("submit_SelectionReply", GOOD)])
    assert state["result"] == GOOD and not state.get("failure")
    assert model.calls == 2  # no retry of the same prompt
    told = [m.content for m in state["messages"] if isinstance(m, HumanMessage)][-1]
    assert "could not parse" in told and "submit_SelectionReply" in told


def test_unparsable_calls_every_time_end_as_a_format_error_not_a_provider_error():
    state, model = run([UNPARSABLE_500])
    assert state["failure"] == "format_error"
    assert model.calls == agent_mod.MAX_NUDGES + 1


def test_two_calls_alternating_with_the_same_answers_end_the_role_early():
    a, b = ("count_images", {"folder": "raw/a"}), ("count_images", {"folder": "raw/b"})
    state, model = run([a, b] * 10, max_steps=40)
    assert state["failure"] == "repeated_call" and "raw/a" in state["reason"] and "raw/b" in state["reason"]
    assert model.calls == 2 * agent_mod.MAX_REPEATS


def test_alternating_calls_that_make_progress_are_not_a_loop():
    calls = [("count_images", {"folder": f"raw/{k}"}) for k in ("a", "b", "a", "c", "a", "b", "c")]
    state, _ = run([*calls, ("submit_SelectionReply", GOOD)], max_steps=20)
    assert state["result"] == GOOD and not state.get("failure")


@pytest.mark.parametrize("error, category", [
    (AttributeError("'str' object has no attribute 'get'"), "harness_error"),
    (TypeError("unsupported operand"), "harness_error"),
    (agent_mod.PolicyError("the scripted policy crashed"), "policy_error"),
])
def test_an_error_in_code_is_its_own_failure_and_is_not_retried(error, category):
    state, model = run([error, ("submit_SelectionReply", GOOD)])
    assert state["failure"] == category and type(error).__name__ in state["reason"]
    assert model.calls == 1, "an error in code was retried like a provider error"


def test_a_small_recursion_limit_ends_the_role_with_step_limit_not_a_graph_error():
    varied = [("count_images", {"folder": f"raw/{k}"}) for k in "abcdefghij"]
    model = FakeToolCallingModel(replies=varied)
    graph = build_role_agent(model, [count_images], role="C1", system_prompt="select", output=SelectionReply,
                             max_steps=40)
    state = graph.invoke({"messages": [HumanMessage("{}")]}, {"recursion_limit": 7})
    assert state["failure"] == "step_limit" and "submit_SelectionReply" in state["reason"]
    assert model.calls == 2  # model, tools, model, tools, then the closing turn: 5 of the 7 supersteps


def test_a_model_that_cannot_go_on_is_quoted_in_its_format_error():
    state, _ = run(["I cannot choose: the data cards list no labels."])
    assert state["failure"] == "format_error" and "the data cards list no labels" in state["reason"]


def test_an_agent_compiled_with_declared_tools_runs_the_tools_its_run_binds():
    from graphs.binding import Binding, WiringError, with_binding

    @tool("count_images")
    def declared(folder: str) -> int:
        """Count images in a folder."""
        raise AssertionError("a declared tool ran instead of the bound one")

    model = FakeToolCallingModel(replies=[("count_images", {"folder": "raw/ham"}), ("submit_SelectionReply", GOOD)])
    graph = build_role_agent(None, [declared], role="C1", system_prompt="select", output=SelectionReply)
    state = graph.invoke({"messages": [HumanMessage("{}")]},
                         with_binding({}, Binding(model, (count_images,), "site_01")))
    assert tool_messages(state)[0].content == "42" and state["result"] == GOOD
    assert state["usage"][0]["site_id"] == "site_01"

    @tool
    def other(folder: str) -> int:
        """Another tool."""
        return 0

    with pytest.raises(WiringError, match="compiled with"):
        graph.invoke({"messages": [HumanMessage("{}")]}, with_binding({}, Binding(model, (other,))))
