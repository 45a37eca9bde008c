"""Finding a trial's reference table: the one measured with the settings S4 was told to launch with.

Kept apart from the pure pass rules (``evals.outcome_rules``) because it touches the disk and may
train: a chosen algorithm the table lacks is calibrated on demand (only that one), so an agent is
never judged against a table that does not know its choice, and never passed without one.
"""

from __future__ import annotations

from evals.reference import ReferenceTable, load_reference, reference_settings
from evals.scoring import Trial


def calibrate_command(t: Trial) -> str:
    """The command that computes the trial's missing table (what an unscored verdict tells the user)."""
    s = reference_settings(t.train)
    return f"fedagentbench envs calibrate {t.env_dir} --task {t.task_id} --rounds {s.rounds} --local-epochs {s.local_epochs}"


def trial_reference(t: Trial, need: list[str]) -> tuple[ReferenceTable | None, str]:
    """The trial's table with every algorithm in ``need`` measured, or None and why not.

    A table exists only once ``eval`` (or ``envs calibrate``) computed it; its missing rows for
    ``need`` are trained here, into the trial's own copy of the environment.
    """
    settings = reference_settings(t.train)
    table = load_reference(t.env_dir, t.task_id, settings)
    if table is None:
        return None, (f"no reference table for {t.task_id} with settings {settings.model_dump()}; "
                      f"compute it with `{calibrate_command(t)}`")
    missing = [n for n in need if n and n not in table.rows]
    if missing:
        from envs.calibrate import ensure_reference

        try:
            table = ensure_reference(t.env_dir, t.task_id, settings, [*table.algorithms, *missing])
        except ValueError as exc:  # an algorithm the registry does not know: nothing to measure it by
            return None, f"cannot calibrate {missing}: {exc}"
    return table, ""
