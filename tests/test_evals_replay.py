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


def _status(rounds: int, state: str = "running") -> str:
    return json.dumps({"job_id": "job_001_aaaaaa", "state": state, "rounds_done": rounds, "rounds_planned": 3,
                       "elapsed_seconds": 4 * rounds})


def _poll(model, statuses: list[str]) -> list:
    """Drive a launch-then-poll conversation: each status result answers the model's last call."""
    history = [HumanMessage("train")]
    replies = []
    for result in [json.dumps({"job_id": "job_001_aaaaaa", "state": "running"}), *statuses]:
        reply = model.invoke(history)
        replies.append(reply)
        if not reply.tool_calls:
            break
        call = reply.tool_calls[0]
        history += [reply, ToolMessage(result, tool_call_id=call["id"], name=call["name"])]
    else:
        replies.append(model.invoke(history))
    return replies


def test_a_job_that_progresses_at_another_pace_replays_its_polls(tmp_path):
    """How many polls a job takes depends on the machine's load: a model that polls until the end
    replays whether the live job needs fewer or more polls than the recorded one."""
    poller = FakeToolCallingModel(replies=[("launch_training", {"algorithm": "fedavg"})]
                                  + [("training_status", {"job_id": "job_001_aaaaaa"})] * 3 + ["done"])
    rec = RecordingChatModel(inner=poller, name_in_key="fake", folder=tmp_path)
    recorded = _poll(rec, [_status(1), _status(2), _status(3, "finished")])
    for live in ([_status(3, "finished")], [_status(1), _status(1), _status(2), _status(2), _status(3, "finished")]):
        rep = ReplayChatModel(name_in_key="fake", folder=tmp_path)
        replayed = _poll(rep, live)
        assert not rep.misses
        assert [r.tool_calls[0]["name"] if r.tool_calls else r.content for r in replayed] == (
            ["launch_training"] + ["training_status"] * len(live) + ["done"])
        ids = [r.tool_calls[0]["id"] for r in replayed if r.tool_calls]
        assert len(set(ids)) == len(ids)  # a recorded answer served twice gets ids of its own
    assert recorded[-1].content == "done"


def test_a_model_that_reacted_to_progress_is_a_miss_when_progress_differs(tmp_path):
    """The recording stopped the job after seeing round 2; a live run whose first report is round 2
    cannot be told apart by the key, and the two recorded answers differ: the replay refuses."""
    stopper = FakeToolCallingModel(replies=[("launch_training", {"algorithm": "fedavg"}),
                                            ("training_status", {"job_id": "job_001_aaaaaa"}),
                                            ("training_status", {"job_id": "job_001_aaaaaa"}),
                                            ("stop_training", {"job_id": "job_001_aaaaaa"}), "stopped"])
    _poll(RecordingChatModel(inner=stopper, name_in_key="fake", folder=tmp_path),
          [_status(1), _status(2), _status(2, "stopped")])
    rep = ReplayChatModel(name_in_key="fake", folder=tmp_path)
    with pytest.raises(ReplayMiss, match="answered 2 ways"):
        _poll(rep, [_status(2), _status(2, "stopped")])


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
