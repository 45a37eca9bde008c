"""Human gates (interrupt / resume) and surviving a crash through the SQLite checkpointer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from graphs.server import build_graph
from tests.graph_helpers import private_env, run_config

pytestmark = pytest.mark.slow
REQUEST = "I want to train a binary pneumonia detection model on chest X-rays."


def test_gates_pause_the_run_and_a_human_decides(built_envs, tmp_path):
    env = private_env(built_envs("xray"), tmp_path)
    graph = build_graph(checkpointer=InMemorySaver())
    cfg = run_config(env, tmp_path / "run", approve="ask", thread_id="gates")
    cfg["configurable"]["thread_id"] = "gates"
    out = graph.invoke({"request": REQUEST}, cfg)
    gate = out["__interrupt__"][0].value
    assert gate["gate"] == "sites" and gate["approvals"]
    approved = sorted(s for s, a in gate["approvals"].items() if a["approved"])
    keep = approved[:2]
    out = graph.invoke(Command(resume=keep), cfg)
    assert out["__interrupt__"][0].value["gate"] == "label_maps"
    assert sorted(out["harmonization"]) == keep, "only the sites the human kept were prepared"
    out = graph.invoke(Command(resume=True), cfg)
    launch = out["__interrupt__"][0].value
    assert launch["gate"] == "launch" and launch["sites"] == keep
    out = graph.invoke(Command(resume="no"), cfg)
    assert "__interrupt__" not in out and out.get("training") is None
    assert graph.get_state(cfg).next == ()


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
