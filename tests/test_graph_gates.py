"""Human gates (interrupt / resume) and surviving a crash through the SQLite checkpointer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from graphs import client, gates, server
from graphs.server import build_graph
from tests.graph_helpers import counting_model, private_env, run_config

pytestmark = pytest.mark.slow
REQUEST = "I want to train a binary pneumonia detection model on chest X-rays."


def _count_role_runs(monkeypatch) -> Counter:
    """(role, site) -> how many times a graph node ran the role (a re-run node replays its role)."""
    runs: Counter = Counter()
    for module in (server, client):
        real = module.run_role

        def counted(code, rt, tools, payload, config, site_id=None, *args, _real=real, **kwargs):
            runs[(code, site_id)] += 1
            return _real(code, rt, tools, payload, config, site_id, *args, **kwargs)

        monkeypatch.setattr(module, "run_role", counted)
    return runs


def _ask_run(built_envs, tmp_path, thread, monkeypatch):
    env = private_env(built_envs("xray"), tmp_path)
    model = counting_model()
    model.runs = _count_role_runs(monkeypatch)
    cfg = run_config(env, tmp_path / "run", approve="ask", thread_id=thread, model=model)
    return build_graph(checkpointer=InMemorySaver()), cfg, model


def _gate(out):
    assert "__interrupt__" in out, f"the run ended without asking (outcomes: {[o['role'] for o in out['outcomes']]})"
    return out["__interrupt__"][0].value


def _each_role_ran_once(state, model):
    """Every model call paid belongs to a role run the state records, and no role ran twice: not by
    the model's count, not by the graph's (a re-run node replays its role from the checkpoint)."""
    paid = dict(model.calls)
    recorded = dict(Counter(u["role"] for u in state.get("usage", [])))
    assert paid == recorded, f"model calls {paid} but recorded role runs used {recorded}: a role ran again"
    outcomes = Counter((o["role"], o["site_id"]) for o in state["outcomes"])
    assert max(outcomes.values()) == 1, f"a role ran twice: {outcomes}"
    assert dict(model.runs) == dict(outcomes), f"nodes ran roles {dict(model.runs)}; the state records {outcomes}"


#: (answer at the sites gate, at the label-map gate, at the launch gate); "edit" keeps the first site only.
DECISIONS = {
    "sites-edit_maps-approve_launch-approve": ("edit", True, True),
    "sites-approve_maps-edit_launch-reject": (True, "edit", "no"),
    "sites-approve_maps-approve_launch-edit": (True, True, "edit"),
    "sites-approve_maps-reject": (True, [], None),
    "sites-reject": ("no", None, None),
}


@pytest.mark.parametrize("case", sorted(DECISIONS))
def test_every_gate_takes_approve_edit_or_reject_on_resume_and_no_role_runs_twice(built_envs, tmp_path, case,
                                                                                  monkeypatch):
    graph, cfg, model = _ask_run(built_envs, tmp_path, case, monkeypatch)
    sites_answer, maps_answer, launch_answer = DECISIONS[case]
    gate = _gate(graph.invoke({"request": REQUEST}, cfg))
    assert gate["gate"] == "sites"
    proposed = sorted(s for s, a in gate["approvals"].items() if a["approved"])
    assert len(proposed) >= 2, "the xray task needs two qualifying sites for an edit to mean something"
    assert model.calls["S2"] == 1
    out = graph.invoke(Command(resume=proposed[:1] if sites_answer == "edit" else sites_answer), cfg)
    kept = proposed[:1] if sites_answer == "edit" else proposed if sites_answer is True else []
    assert model.calls["S2"] == 1 and model.runs[("S2", None)] == 1, "resuming the sites gate ran S2 again"
    if not kept:
        assert "__interrupt__" not in out and not out.get("harmonization") and "C2" not in model.calls
        return _each_role_ran_once(out, model)
    gate = _gate(out)
    assert gate["gate"] == "label_maps" and sorted(gate["label_maps"]) == kept
    assert sorted(out["harmonization"]) == kept, "only the sites the human kept were prepared"
    c2_calls = model.calls["C2"]
    maps_kept = kept[-1:] if maps_answer == "edit" else kept if maps_answer is True else []
    out = graph.invoke(Command(resume=kept[-1:] if maps_answer == "edit" else maps_answer), cfg)
    assert model.calls["C2"] == c2_calls, "resuming the label-map gate ran C2 again"
    if not maps_kept:
        assert "__interrupt__" not in out and "S3" not in model.calls and out.get("training") is None
        return _each_role_ran_once(out, model)
    gate = _gate(out)
    assert gate["gate"] == "launch" and gate["sites"] == maps_kept and out["algorithm"]
    s3_calls = model.calls["S3"]
    out = graph.invoke(Command(resume=maps_kept[:1] if launch_answer == "edit" else launch_answer), cfg)
    assert "__interrupt__" not in out and graph.get_state(cfg).next == ()
    assert model.calls["S3"] == s3_calls, "resuming the launch gate ran S3 again"
    if launch_answer == "no":
        assert out.get("training") is None and "S4" not in model.calls
    else:
        trained = maps_kept[:1] if launch_answer == "edit" else maps_kept
        assert out["training"]["sites"] == trained
        if len(trained) < 2:  # a human kept one site: one site is no federation, launch_training refuses it
            assert out["training"]["status"] == "failed" and "federation needs at least 2" in out["training"]["notes"]
        else:
            assert out["training"]["status"] == "finished"
    _each_role_ran_once(out, model)


def test_an_answer_naming_an_unknown_site_is_asked_again_with_the_reason(built_envs, tmp_path, monkeypatch):
    graph, cfg, model = _ask_run(built_envs, tmp_path, "unknown-site", monkeypatch)
    proposed = sorted(s for s, a in _gate(graph.invoke({"request": REQUEST}, cfg))["approvals"].items()
                      if a["approved"])
    again = _gate(graph.invoke(Command(resume=["site_99"]), cfg))
    assert again["gate"] == "sites" and "site_99" in again["error"] and proposed[0] in again["error"]
    out = graph.invoke(Command(resume="no"), cfg)
    assert "__interrupt__" not in out and model.calls["S2"] == 1 and model.runs[("S2", None)] == 1
    assert not any(a["approved"] for a in out["approvals"].values())


def test_a_crash_between_a_role_and_its_gate_resumes_at_the_gate(built_envs, tmp_path, monkeypatch):
    """The process dies after each reviewed role finished but before its gate asked: the new process
    (a new graph on the same checkpointer) asks the gate's question without running the role again."""
    env = private_env(built_envs("xray"), tmp_path)
    model, saver = counting_model(), InMemorySaver()
    model.runs = _count_role_runs(monkeypatch)
    cfg = run_config(env, tmp_path / "run", approve="ask", thread_id="crash-at-gate", model=model)
    real_ask, crashed = gates.ask, []

    def crash_once(question, read):
        if question["gate"] not in crashed:
            crashed.append(question["gate"])
            raise RuntimeError(f"killed before the {question['gate']} gate asked")
        return real_ask(question, read)

    monkeypatch.setattr(gates, "ask", crash_once)
    pending, answers = {"request": REQUEST}, {"sites": True, "label_maps": True, "launch": "no"}
    for gate, role in (("sites", "S2"), ("label_maps", "C3"), ("launch", "S3")):
        with pytest.raises(RuntimeError, match=f"before the {gate} gate"):
            build_graph(checkpointer=saver).invoke(pending, cfg)
        calls, runs = dict(model.calls), dict(model.runs)
        graph = build_graph(checkpointer=saver)  # the restarted process
        assert graph.get_state(cfg).next == ({"sites": "approve_sites", "label_maps": "review_maps",
                                              "launch": "approve_launch"}[gate],)
        asked = _gate(graph.invoke(None, cfg))
        assert asked["gate"] == gate and (dict(model.calls), dict(model.runs)) == (calls, runs), \
            f"resuming at the {gate} gate ran {role} again"
        pending = Command(resume=answers[gate])
    out = build_graph(checkpointer=saver).invoke(pending, cfg)
    assert crashed == ["sites", "label_maps", "launch"] and out.get("training") is None
    _each_role_ran_once(out, model)


CRASHING_RUN = textwrap.dedent("""
    import sqlite3, sys, time
    from langgraph.checkpoint.sqlite import SqliteSaver
    from graphs.scripted import roles
    from graphs.scripted.model import POLICIES
    from graphs.server import build_graph
    from tests.graph_helpers import run_config
    c2 = POLICIES["PreprocessReport"]
    def slow_c2(t):  # phase 2 takes long enough to be killed in
        time.sleep(30)
        return c2(t)
    POLICIES["PreprocessReport"] = slow_c2
    env, run, db = sys.argv[1:4]
    cfg = run_config(env, run)
    cfg["configurable"]["thread_id"] = "crash"
    graph = build_graph(checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)))
    graph.invoke({"request": sys.argv[4]}, cfg)
""")


def _phase1_checkpointed(db) -> bool:
    if not db.exists():
        return False
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("select count(*) from writes where channel = 'approvals'").fetchone()
        return bool(rows and rows[0])
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def test_a_killed_run_resumes_from_its_thread_without_redoing_finished_roles(built_envs, tmp_path):
    env = private_env(built_envs("xray"), tmp_path)
    db, run = tmp_path / "ckpt.sqlite", tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, str(env), str(run), str(db), REQUEST],
                            cwd=os.getcwd(), start_new_session=True)
    deadline = time.time() + 120
    while not _phase1_checkpointed(db) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert _phase1_checkpointed(db), "phase 1 never reached the checkpointer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    graph = build_graph(checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)))
    cfg = run_config(env, run)
    cfg["configurable"]["thread_id"] = "crash"
    before = graph.get_state(cfg)
    assert before.next, "the killed run should have work left"
    out = graph.invoke(None, cfg)
    roles = [o["role"] for o in out["outcomes"]]
    assert roles.count("S1") == 1 and roles.count("S2") == 1, "finished roles ran again after the resume"
    assert out["training"]["status"] == "finished"
