"""Margin arithmetic of the S3/S4 outcome rules on CONSTRUCTED tables (pure logic, not real outcomes)."""

from __future__ import annotations

from evals.outcome_rules import s3_verdict, s4_verdict
from evals.reference import AlgorithmOutcome, ReferenceSettings, ReferenceTable


def constructed_table(outcomes: dict[str, float | None]) -> ReferenceTable:
    rows = {n: AlgorithmOutcome(algorithm=n, global_bacc=o, error=None if o is not None else "boom")
            for n, o in outcomes.items()}
    return ReferenceTable(modality="fundus", env_seed=0, scale=0.3, task_id="t",
                          settings=ReferenceSettings(rounds=1, local_epochs=1), sites=["a"], rows=rows)


def test_s3_margin_arithmetic_and_family_fallback():
    t = constructed_table({"fedavg": 0.80, "fedprox": 0.77, "fedrep": 0.50, "fedbn": 0.60})
    assert s3_verdict(t, "fedprox", 0.05).passed is True
    v = s3_verdict(t, "fedrep", 0.05)
    assert v.passed is False and abs(v.detail["regret"] - 0.30) < 1e-9 and v.detail["best"] == "fedavg"
    assert s3_verdict(t, "fedavg", 0.05, family=["fedbn"]).passed is True  # no family member near: outcome alone
    assert "outcome alone" in s3_verdict(t, "fedavg", 0.05, family=["fedbn"]).why
    assert s3_verdict(t, "fedavg", 0.05, family=["fedprox"]).passed is False  # family member near: only it


def test_unmeasured_choices_are_unscored_never_passed():
    t = constructed_table({"fedavg": 0.8, "broken": None})
    assert s3_verdict(t, "broken", 0.05).passed is None
    assert s3_verdict(t, "absent", 0.05).passed is None
    assert s4_verdict(t, "fedavg", None, 0.05).passed is None


def test_s4_margin_arithmetic():
    t = constructed_table({"fedavg": 0.80})
    assert s4_verdict(t, "fedavg", 0.76, 0.05).passed is True
    assert s4_verdict(t, "fedavg", 0.70, 0.05).passed is False


def test_noise_margin_widens_on_tiny_test_splits_only():
    """Pure arithmetic: a few test images per site make two honest outcomes differ by more than the
    seed-spread margin; real-sized splits do not, so there the suite's margin governs."""
    from evals.outcome_rules import noise_margin

    tiny, real = noise_margin([5, 3, 6, 5]), noise_margin([400, 400, 400])
    assert tiny > 0.3 and 0.15 > real > 0
    assert noise_margin([]) == 0.0
    assert noise_margin([5, 5]) > noise_margin([5, 5, 5, 5])  # more sites average the noise down


def test_the_best_of_more_algorithms_needs_more_standard_errors():
    """Pure arithmetic: the maximum of many noisy outcomes sits higher by chance (Bonferroni)."""
    from evals.outcome_rules import NOISE_Z, best_of_z

    assert best_of_z(1) == NOISE_Z < best_of_z(3) < best_of_z(45) < 3.2
