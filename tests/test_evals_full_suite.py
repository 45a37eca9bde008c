"""The full benchmark suite end to end with the scripted policy: every role scores 100, and a crashed
eval resumes where it stopped. Its own module (not test_evals_runner.py) so that ``--dist loadscope``
can run it beside the runner's other tests: it is one of the suite's longest tests."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from evals.results import ROLES, load_rows
from tests.graph_helpers import TEST_REFERENCE

#: The full suite in CI: every template once, small. ``scripted`` ignores the prompt style (its rules
#: are the same under both), so one style covers every task's environment, request and answer key.
#: Its reference tables hold the graph tests' three algorithms (tests/graph_helpers.TEST_REFERENCE,
#: so both share one table per task); a trial's choice outside them is calibrated on demand.
FULL_CI = ["--suite", "full", "--guidance", "fine-grained", "--scale", "0.3",
           "--reference-algorithms", *TEST_REFERENCE]


@pytest.mark.slow
def test_full_suite_with_scripted_scores_100_and_resumes_after_a_crash(tmp_path, capsys, env_cache):
    from evals.suite import load_suite
    from fedagentbench.cli import main

    out = tmp_path / "bench"
    n = len(load_suite("full").entries("fine-grained"))
    argv = ["eval", "--models", "scripted", *FULL_CI, "--trials", "1", "--jobs", "2", "--out", str(out),
            "--env-cache", str(env_cache)]  # the 0.3 builds the other tests use
    assert main(argv) == 0
    table = pd.read_csv(out / "summary.csv")
    assert table["tasks"].sum() == n == 18 and (table["unscored"] == 0).all()
    below = {r: table.loc[table[r] < 100, ["modality", "guidance", r]].to_dict("records") for r in ROLES}
    assert not {r: v for r, v in below.items() if v}, below

    # a crash: the last finished trial's rows are lost and a half-written line is left behind
    lines = (out / "results.jsonl").read_text().splitlines()
    lost = json.loads(lines[-1])
    (out / "results.jsonl").write_text("\n".join(lines[:-7]) + "\n" + lines[-1][:50])
    capsys.readouterr()
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert f"ran 1 task-trial(s), skipped {n - 1}" in said, said
    rows = load_rows(out / "results.jsonl")
    assert len(rows) == n * 7
    assert {(r["task_id"], r["guidance"]) for r in rows if r["role"] == "S1"} >= {(lost["task_id"], lost["guidance"])}
