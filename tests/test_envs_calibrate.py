"""Reference tables: calibrating a task trains each algorithm once, caches, extends and records failures."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.progress import Progress

import envs.calibrate as cal
from envs.readonly import make_read_only, make_writable
from evals.reference import load_reference, reference_path, reference_settings

TASK = "derm-binary-cancer"
TRAIN = {"rounds": 1, "local_epochs": 1, "image_size": 16, "num_threads": 1, "baselines": False}


@pytest.fixture
def env_dir(built_envs, tmp_path: Path) -> Path:
    """A private copy of the session's dermatoscopy build, its key made read-only as eval's are."""
    dest = tmp_path / "env"
    shutil.copytree(built_envs("dermatoscopy").root, dest, symlinks=True, ignore=shutil.ignore_patterns("*.tmp"))
    make_read_only(dest / "key")
    yield dest
    make_writable(dest)


@pytest.fixture
def trained(monkeypatch) -> list[str]:
    """The names trained, in order (wraps the real training)."""
    names: list[str] = []
    real = cal.train_outcome

    def counting(name, cfg, data):
        names.append(name)
        return real(name, cfg, data)

    monkeypatch.setattr(cal, "train_outcome", counting)
    return names


def test_calibrate_trains_each_algorithm_once_caches_and_extends(env_dir, trained):
    settings = reference_settings(TRAIN)
    events = []
    table = cal.calibrate(env_dir, TASK, settings, ["fedavg", "fedbn"], progress=lambda *a: events.append(a))
    assert table.algorithms == ["fedavg", "fedbn"] and trained == ["fedavg", "fedbn"]
    assert ("done", "fedbn", 2, 2) in events
    assert table.rows["fedbn"].primary_model == "personal" and table.rows["fedbn"].personal_bacc is not None
    assert set(table.rows["fedavg"].per_site) == set(table.sites) and len(table.sites) >= 2
    assert all(0.0 <= v <= 1.0 for v in table.rows["fedavg"].per_site.values())
    assert table.baselines is not None and table.baselines.local_best_site in table.sites
    assert table.best()[0] in table.algorithms
    path = reference_path(env_dir, TASK, settings)
    before = path.read_bytes()

    again = cal.calibrate(env_dir, TASK, settings, ["fedavg"])
    assert trained == ["fedavg", "fedbn"] and path.read_bytes() == before  # cached: nothing retrained
    assert again.outcome("fedavg") == table.outcome("fedavg")

    extended = cal.ensure_reference(env_dir, TASK, settings, ["fedavg", "fedbn", "fedprox"])
    assert trained[-1] == "fedprox" and len(trained) == 3
    assert load_reference(env_dir, TASK, settings).algorithms == ["fedavg", "fedbn", "fedprox"] == extended.algorithms


def test_a_failing_algorithm_is_recorded_and_the_others_still_run(env_dir, monkeypatch):
    import algorithms.registry as reg

    real = reg.get_algorithm

    def broken(name):
        if name == "fedprox":
            raise RuntimeError("diverged")
        return real(name)

    monkeypatch.setattr(reg, "get_algorithm", broken)
    table = cal.calibrate(env_dir, TASK, reference_settings(TRAIN), ["fedprox", "fedavg"])
    assert "diverged" in table.rows["fedprox"].error and table.outcome("fedprox") is None
    assert table.outcome("fedavg") is not None and table.best()[0] == "fedavg"


def test_settings_change_the_cache_file_and_ignore_unmeasured_keys():
    a = reference_settings(TRAIN)
    assert reference_settings({**TRAIN, "num_threads": 4, "engine": "flower-simulation"}) == a
    assert reference_settings({**TRAIN, "rounds": 2}).digest() != a.digest()
    assert reference_settings({**TRAIN, "seed": 1}).digest() != a.digest()
    assert reference_settings({}).rounds == 5  # the training tools' default


def test_unknown_task_or_algorithm_is_refused_with_the_choices(env_dir):
    with pytest.raises(ValueError, match="derm-binary-cancer"):
        cal.calibrate(env_dir, "nope", reference_settings(TRAIN))
    with pytest.raises(ValueError, match="fedavg"):
        cal.calibrate(env_dir, TASK, reference_settings(TRAIN), ["bogus"])


def test_cli_calibrates_prints_the_table_and_exits_2_on_bad_input(env_dir, tmp_path, capsys):
    from evals.reference import reference_path, reference_settings
    from evals.suite import load_suite
    from fedagentbench.cli import main

    # the full suite's settings (Adam, its batch and epochs), two of them overridden to keep it tiny
    argv = ["envs", "calibrate", str(env_dir), "--task", TASK, "--suite", "full", "--rounds", "1",
            "--image-size", "16", "--algorithms", "fedavg"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "fedavg" in out and "baselines: local-only mean" in out and "best: fedavg" in out
    want = reference_settings({**load_suite("full").train.model_dump(), "rounds": 1, "image_size": 16})
    assert want.optimizer == "adam" and reference_path(env_dir, TASK, want).exists()
    assert main(["envs", "calibrate", str(env_dir), "--task", "nope"]) == 2
    assert main(["envs", "calibrate", str(env_dir), "--task", TASK, "--suite", "nightly"]) == 2
    assert "shipped suites" in capsys.readouterr().err
    assert main(["envs", "calibrate", str(tmp_path / "missing"), "--task", TASK]) == 2
    assert "build it first" in capsys.readouterr().err


def test_runner_computes_missing_tables_before_trials(env_dir, tmp_path, monkeypatch):
    from evals import runner, trial

    cache = tmp_path / "cache"
    monkeypatch.setattr(trial, "env_folder", lambda c, m, s, sc: env_dir)
    suite = SimpleNamespace(train=SimpleNamespace(model_dump=lambda: TRAIN), reference_algorithms=["fedavg", "fedbn"])
    cfg = runner.EvalConfig(suite=suite, models=[], out=tmp_path, reference_algorithms=["fedavg"])
    entry = SimpleNamespace(env_key=("dermatoscopy", 0, 0.3), task_id=TASK)
    todo = [SimpleNamespace(entry=entry, env_cache=cache)] * 2
    with ThreadPoolExecutor(1) as pool, Progress(console=Console(quiet=True)) as bar:
        runner.calibrate_tasks(cfg, todo, pool, bar)
    table = load_reference(env_dir, TASK, reference_settings(TRAIN))
    assert table is not None and table.algorithms == ["fedavg"]  # the CLI's override beats the suite's set


def test_two_processes_calibrating_one_table_at_once_train_each_row_once(env_dir):
    """The second waits for the first (calibrate's lock) and returns its table instead of retraining
    (without the lock both train every row and each returns its own timings)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    settings = reference_settings(TRAIN)
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        a, b = pool.map(cal.calibrate, [env_dir] * 2, [TASK] * 2, [settings] * 2, [["fedavg", "fedprox"]] * 2)
    assert a.model_dump() == b.model_dump()
    assert a.algorithms == ["fedavg", "fedprox"]
    assert load_reference(env_dir, TASK, settings).model_dump() == a.model_dump()
