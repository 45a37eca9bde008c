"""The S3/S4 pass rules on measured outcomes, as pure functions of a reference table.

Kept apart from the scorers so the margin arithmetic can be tested on its own; the scorers
(evals.scorers) are to call these once they are wired to the task's reference table (#15).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from evals.reference import ReferenceTable


@dataclass(frozen=True)
class OutcomeVerdict:
    """A pass/fail on measured outcomes, with the figures a reader needs to check it."""

    passed: bool | None  # None: cannot be judged (see ``why``); never a silent pass
    why: str
    detail: dict


#: Standard errors two outcomes may differ by before a difference counts as real.
NOISE_Z = 2.0


def best_of_z(n_algorithms: int, alpha: float = 0.05) -> float:
    """Standard errors the best of ``n_algorithms`` noisy outcomes may lie above an equal one.

    The best row of a table is the maximum of many noisy measurements, so it sits above its true value
    by chance; a one-sided family-wise ``alpha`` over the table's rows (Bonferroni) sets how far.
    """
    return max(NOISE_Z, NormalDist().inv_cdf(1 - alpha / max(1, n_algorithms)))


def noise_margin(test_sizes: list[int], z: float = NOISE_Z) -> float:
    """How far two honest outcomes can differ on test splits this small (``z`` standard errors).

    Each site's balanced accuracy on ``n`` test images has a standard error of at most
    ``sqrt(0.25 / n)``; the mean over ``k`` sites ``sqrt(sum se_i^2) / k``; the difference of two
    independent outcomes ``sqrt(2)`` times that. With a few images per site this exceeds the measured
    seed-spread margin: a gap inside it (the "best" of 45 algorithms is often a lucky draw) is noise,
    not a worse choice. On real-sized sites the suite's margin governs.
    """
    sizes = [n for n in test_sizes if n]
    if not sizes:
        return 0.0
    return z * math.sqrt(2) * math.sqrt(sum(0.25 / n for n in sizes)) / len(sizes)


def table_noise(table: ReferenceTable) -> float:
    """The noise margin of a table's choices: its test splits, and the best of its rows by chance."""
    return noise_margin(table.test_sizes, best_of_z(len(table.rows)))


def s3_verdict(table: ReferenceTable, chosen: str, margin: float,
               family: list[str] | None = None) -> OutcomeVerdict:
    """S3 passes when ``chosen`` is within ``margin`` of the best outcome.

    With a ``family`` (implicit-goal tasks) the acceptable set is the family members within the
    margin; when no family member is within it, the task is judged on outcome alone (any algorithm
    within the margin), and the explanation says so.
    """
    mine = table.outcome(chosen)
    if mine is None:
        why = "failed in calibration" if chosen in table.rows else "is not in the reference table"
        return OutcomeVerdict(None, f"{chosen} {why}; calibrate it to judge S3", {"chosen": chosen})
    best, top = table.best()
    noise = table_noise(table)
    suite_margin, margin = margin, max(margin, noise)
    near = table.within(margin)
    acceptable, note = near, "outcome alone"
    if family:
        in_family = [n for n in near if n in family]
        if in_family:
            acceptable, note = in_family, "family of the implied goal"
        else:
            note = "outcome alone (no member of the implied family is within the margin)"
    ok = chosen in acceptable
    detail = {"chosen": chosen, "chosen_outcome": mine, "best": best, "best_outcome": top,
              "regret": top - mine, "margin": margin, "suite_margin": suite_margin,
              "noise_margin": round(noise, 3), "acceptable": acceptable, "judged_by": note}
    why = (f"{chosen} reaches {mine:.3f}, best {best} {top:.3f} (regret {top - mine:.3f}, margin "
           f"{margin:.3f}); acceptable by {note}: {acceptable}")
    return OutcomeVerdict(ok, why, detail)


def s4_verdict(table: ReferenceTable, algorithm: str, measured: float | None,
               margin: float) -> OutcomeVerdict:
    """S4's outcome half: the run's measured outcome reaches the reference outcome minus ``margin``."""
    ref = table.outcome(algorithm)
    if ref is None or measured is None:
        missing = "reference outcome" if ref is None else "run's measured outcome (summary.json)"
        return OutcomeVerdict(None, f"no {missing} for {algorithm}", {"algorithm": algorithm})
    ok = measured >= ref - margin - 1e-12
    detail = {"algorithm": algorithm, "measured": measured, "reference": ref, "margin": margin}
    return OutcomeVerdict(ok, f"run reached {measured:.3f}, reference {ref:.3f} - margin {margin}", detail)
