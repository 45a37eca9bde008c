"""`langgraph dev` serves the graph offline and its HTTP API runs it to the end with the scripted core."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.graph_helpers import private_env

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict, timeout: float) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def test_langgraph_dev_runs_the_graph_over_http(built_envs, tmp_path):
    cli = Path(sys.executable).parent / "langgraph"
    if not cli.exists():
        pytest.fail("langgraph-cli is not installed in the venv (make installs the dev extra)")
    env = private_env(built_envs("ultrasound"), tmp_path)
    port = _free_port()
    environ = {**os.environ, "LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "1",
               "LANGSMITH_TRACING": "false", "FEDAGENTBENCH_ENV_DIR": str(env),
               "FEDAGENTBENCH_RUN_DIR": str(tmp_path / "run")}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115  the server writes to it until the test stops it
    proc = subprocess.Popen([str(cli), "dev", "--port", str(port), "--no-reload", "--no-browser",
                             "--host", "127.0.0.1"], cwd=os.getcwd(), env=environ, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                urllib.request.urlopen(base + "/ok", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("langgraph dev did not start:\n" + (tmp_path / "server.log").read_text()[-2000:])
        state = _post(base + "/runs/wait", {
            "assistant_id": "fedagentbench",
            "input": {"request": "Train a model to tell benign from malignant breast masses on ultrasound images."},
            "config": {"configurable": {"train": {"rounds": 1, "local_epochs": 1}}}}, timeout=300)
        roles = {o["role"] for o in state["outcomes"]}
        assert roles == {"S1", "C1", "S2", "C2", "C3", "S3", "S4"}
        assert state["training"]["status"] == "finished"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(".langgraph_api", ignore_errors=True)
