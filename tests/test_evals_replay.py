"""Record and replay: responses come back bit for bit, keyed by model, settings, tools and messages; a
miss raises; a recorded scripted run replays offline and re-scores identically."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from evals.replay import RecordingChatModel, ReplayChatModel, ReplayMiss, request_key
from graphs.testing import FakeToolCallingModel


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def mul(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def _fake():
    return FakeToolCallingModel(replies=[("add", {"a": 1, "b": 2}), AIMessage(
        "three", usage_metadata={"input_tokens": 11, "output_tokens": 3, "total_tokens": 14},
        response_metadata={"model_name": "fake-1", "finish_reason": "stop"})])


def _conversation(model):
    first = model.invoke([HumanMessage("1+2?")])
    tool_msg = ToolMessage("3", tool_call_id=first.tool_calls[0]["id"], name="add")
    second = model.invoke([HumanMessage("1+2?"), first, tool_msg])
    return first, second


def test_replay_serves_the_recorded_responses_bit_for_bit(tmp_path):
    rec = RecordingChatModel(inner=_fake(), name_in_key="fake", settings={"temperature": 0.0}, folder=tmp_path)
    recorded = _conversation(rec.bind_tools([add]))
    assert len(list(tmp_path.glob("*.json"))) == 2
    rep = ReplayChatModel(name_in_key="fake", settings={"temperature": 0.0}, folder=tmp_path)
    replayed = _conversation(rep.bind_tools([add]))
    for a, b in zip(recorded, replayed):
        assert a == b
        assert a.model_dump() == b.model_dump()  # ids, usage and provider metadata included
    assert replayed[1].usage_metadata["input_tokens"] == 11 and not rep.misses


@pytest.mark.parametrize("change", ["model", "settings", "tools", "bind", "message"])
def test_anything_in_the_key_that_differs_is_a_miss(tmp_path, change):
    rec = RecordingChatModel(inner=_fake(), name_in_key="fake", settings={"temperature": 0.0}, folder=tmp_path)
    rec.bind_tools([add]).invoke([HumanMessage("1+2?")])
    rep = ReplayChatModel(name_in_key="other" if change == "model" else "fake",
                          settings={"temperature": 0.7 if change == "settings" else 0.0}, folder=tmp_path)
    bound = rep.bind_tools([add, mul] if change == "tools" else [add],
                           **({"tool_choice": "any"} if change == "bind" else {}))
    with pytest.raises(ReplayMiss, match="no recorded response") as err:
        bound.invoke([HumanMessage("1+3?" if change == "message" else "1+2?")])
    assert "--record" in str(err.value) and rep.misses == [str(err.value)]


def test_volatile_values_in_tool_results_do_not_change_the_key():
    def key(text: str) -> str:
        return request_key("m", {}, [], {}, [HumanMessage("go"), ToolMessage(text, tool_call_id="c1", name="t")])

    a = json.dumps({"moved": 3, "seconds": 1.93, "job_id": "job_001_9f3a2c"})
    b = json.dumps({"moved": 3, "seconds": 0.41, "job_id": "job_001_00be11"})
    assert key(a) == key(b)
    assert key(a) != key(json.dumps({"moved": 4, "seconds": 1.93, "job_id": "job_001_9f3a2c"}))


@pytest.mark.slow
def test_a_recorded_scripted_run_replays_offline_and_rescores_identically(built_envs, tmp_path):
    from graphs.scripted.model import ScriptedChatModel
    from graphs.server import build_graph
    from tests.graph_helpers import private_env, run_config, score_run

    built = built_envs("dermatoscopy")
    task = built.key.tasks["derm-binary-cancer"]

    def run(model, name):
        env = private_env(built, tmp_path / name)
        state = build_graph().invoke({"request": task.request}, run_config(env, tmp_path / name / "run", model=model))
        scores = score_run(state, built.key, task.task_id, env, tmp_path / name / "run")
        return state, {r: (s.passed, s.failure_category, s.explanation) for r, s in scores.items()}

    cache = tmp_path / "cache"
    recorded_state, recorded = run(RecordingChatModel(inner=ScriptedChatModel(), name_in_key="scripted",
                                                      folder=cache), "recorded")
    replay = ReplayChatModel(name_in_key="scripted", folder=cache)
    replayed_state, replayed = run(replay, "replayed")
    assert not replay.misses, replay.misses[:1]
    assert replayed == recorded
    assert all(passed is not None for passed, _, _ in recorded.values())
    for field in ("task_spec", "selections", "approvals", "harmonization", "algorithm"):
        assert replayed_state[field] == recorded_state[field], field
    empty = ReplayChatModel(name_in_key="scripted", folder=tmp_path / "empty")
    _, missed = run(empty, "missed")
    assert empty.misses and missed["S1"][1] == "provider_error"  # the graph records it; the runner unscores it


def test_ids_of_the_recorded_run_are_translated_to_the_live_run(tmp_path):
    recorded_job, live_job = "job_001_aaaaaa", "job_001_bbbbbb"
    inner = FakeToolCallingModel(replies=[("training_status", {"job_id": recorded_job})])
    history = [HumanMessage("train"), ToolMessage(f'{{"job_id": "{recorded_job}"}}', tool_call_id="c0", name="launch")]
    RecordingChatModel(inner=inner, name_in_key="fake", folder=tmp_path).invoke(history)
    live = [HumanMessage("train"), ToolMessage(f'{{"job_id": "{live_job}"}}', tool_call_id="c0", name="launch")]
    reply = ReplayChatModel(name_in_key="fake", folder=tmp_path).invoke(live)
    assert reply.tool_calls[0]["args"] == {"job_id": live_job}
