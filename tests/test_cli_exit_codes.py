"""``fedagentbench`` exit codes: scripts can tell a pass from a failed role, bad input, a provider that
cannot be used and a harness error (see fedagentbench/cli/exit_codes.py and the README)."""

from __future__ import annotations

import pytest

from fedagentbench.cli import main
from fedagentbench.cli.exit_codes import HARNESS, OK, PROVIDER, ROLE_FAILED, USAGE, run_exit_code
from tests.graph_helpers import private_env

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY")


@pytest.mark.parametrize(("model", "variable"), [("openai:gpt-4.1", "OPENAI_API_KEY"),
                                                 ("anthropic:claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
                                                 ("deepseek:deepseek-chat", "DEEPSEEK_API_KEY"),
                                                 ("google_genai:gemini-2.5-flash", "GOOGLE_API_KEY")])
def test_a_missing_api_key_names_the_variable_before_anything_runs(model, variable, tmp_path, monkeypatch, capsys):
    for k in KEYS:
        monkeypatch.delenv(k, raising=False)
    out = tmp_path / "run"
    code = main(["run", "train a pneumonia detector on chest X-rays", "--env", "xray", "--model", model,
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == PROVIDER
    assert variable in err and "Traceback" not in err
    assert not out.exists(), "nothing is built or run before the credentials are checked"


def test_an_empty_key_counts_as_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    assert main(["run", "x", "--env", "xray", "--model", "openai:gpt-4.1", "--out", str(tmp_path / "r")]) == PROVIDER
    assert "OPENAI_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [["--rounds", "0"], ["--local-epochs", "-1"], ["--scale", "0"],
                                   ["--model", "nonsense"]])
def test_bad_run_arguments_exit_2_with_one_line(extra, tmp_path, capsys):
    assert main(["run", "train a pneumonia detector", "--env", "xray", "--out", str(tmp_path / "r"), *extra]) == USAGE
    err = capsys.readouterr().err
    assert err.startswith("fedagentbench run: error:") and "Traceback" not in err


def test_an_unknown_option_exits_2():
    with pytest.raises(SystemExit) as exc:
        main(["run", "x", "--env", "xray", "--no-such-option"])
    assert exc.value.code == USAGE


def _report(**changes):
    report = {"roles": {"S1": {"success": True}, "S4": {"success": True}},
              "outcomes": [{"role": "S1", "success": True, "failure": None},
                           {"role": "S4", "success": True, "failure": None}],
              "training": {"status": "finished"}, "metrics": {"federated": {"balanced_accuracy": 0.8}}}
    report.update(changes)
    return report


@pytest.mark.parametrize(("report", "code"), [
    (_report(), OK),
    (_report(roles={"S1": {"success": True}, "S4": {"success": False, "failure_category": "wrong_decision"}}),
     ROLE_FAILED),
    (_report(training={"status": "failed"}), ROLE_FAILED),
    (_report(metrics={}), ROLE_FAILED),
    (_report(roles={}, outcomes=[]), ROLE_FAILED),
    (_report(outcomes=[{"role": "S4", "success": False, "failure": "provider_error"}]), PROVIDER),
    (_report(outcomes=[{"role": "S4", "success": False, "failure": "provider_error"},
                       {"role": "C3", "success": False, "failure": "harness_error"}]), HARNESS),
])
def test_the_worst_outcome_decides_the_exit_code(report, code):
    assert run_exit_code(report) == code


def test_help_documents_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "exit codes:" in text and "OPENAI_API_KEY" not in text
    for code in ("0", "1", "2", "3", "4"):
        assert f"\n  {code}  " in text


def test_a_run_that_trains_nothing_exits_1(built_envs, tmp_path, capsys):
    """Dermoscopy asked of a chest X-ray environment: no site holds matching data, nothing is trained."""
    env = private_env(built_envs("xray"), tmp_path)
    code = main(["run", "I want to train a melanoma versus benign nevus classifier on dermoscopy images.",
                 "--env", str(env), "--out", str(tmp_path / "run")])
    assert code == ROLE_FAILED
    assert (tmp_path / "run" / "report.json").exists()
