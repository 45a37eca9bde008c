"""Names are resolved by the callers: the CLI and S4's launch tool accept every registered name,
and a bad hyper-parameter is answered with the valid ones."""

from __future__ import annotations

import json

import pytest

from algorithms.registry import all_algorithms, list_algorithms
from fedagentbench.cli import main
from fl_core.testing import make_noise_folders
from tools.federate import make_training_tools


def test_list_algorithms_shows_every_name_with_its_hyperparameters(capsys) -> None:
    assert main(["train", "--list-algorithms"]) == 0
    out = capsys.readouterr().out
    for name in list_algorithms():
        assert name in out
    assert "mu=0.01" in out  # FedProx's default, read from its signature


def test_cli_bad_hyperparameter_names_the_valid_ones_before_reading_data(tmp_path, capsys) -> None:
    dirs = make_noise_folders(tmp_path / "d", clients=2, per_class=2, classes=2)
    code = main(["train", "--data", *dirs, "--algorithm", "fedprox", "--param", "nu=0.1", "--out",
                 str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no parameter 'nu'" in err and "['mu']" in err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_cli_unknown_algorithm_lists_the_registered_ones(tmp_path, capsys) -> None:
    dirs = make_noise_folders(tmp_path / "d", clients=2, per_class=2, classes=2)
    assert main(["train", "--data", *dirs, "--algorithm", "fedfoo", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "registered: " in capsys.readouterr().err


def test_cli_trains_a_named_algorithm_with_a_parameter(tmp_path) -> None:
    dirs = make_noise_folders(tmp_path / "d", clients=2, per_class=4, classes=2)
    assert main(["train", "--data", *dirs, "--algorithm", "scaffold", "--param", "server_lr=0.5", "--rounds", "1",
                 "--image-size", "16", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["algorithm"] == "scaffold" and summary["config"]["algorithm_params"] == {"server_lr": 0.5}


@pytest.mark.parametrize("name", list(all_algorithms()))
def test_launch_training_validates_every_name(tmp_path, name) -> None:
    """Every registered name passes S4's checks; a made-up hyper-parameter is refused naming the valid ones."""
    dirs = make_noise_folders(tmp_path / "d", clients=2, per_class=2, classes=2)
    tools = {t.name: t for t in make_training_tools({"site_01": dirs[0], "site_02": dirs[1]}, tmp_path / "runs")}
    msg = tools["launch_training"].invoke({"algorithm": name, "algorithm_params": {"not_a_parameter": 1}})
    valid = list(all_algorithms()[name]().get_params())
    assert isinstance(msg, str) and "not_a_parameter" in msg
    assert (f"valid: {valid}" in msg) if valid else ("takes none" in msg)
