"""Exit codes of the ``fedagentbench`` command, so that scripts can tell how a run ended.

=====  ==================================================================================
code   meaning
=====  ==================================================================================
0      every role passed (scored suite task) or finished (other requests), with a finished
       training run
1      the run ended but a role failed, or it ended without a finished training run
2      bad input or usage: an unknown option or value, a missing folder, unreadable data
3      the model provider cannot be used: missing API key, package not installed, or the
       provider failed (unreachable, refused) during the run
4      harness error: the system (not the model) failed; a bug to report
130    interrupted (Ctrl-C)
=====  ==================================================================================
"""

from __future__ import annotations

from typing import Any

OK = 0
ROLE_FAILED = 1
USAGE = 2
PROVIDER = 3
HARNESS = 4
INTERRUPTED = 130

#: Failure categories of a role that mean the system failed, not the model.
HARNESS_FAILURES = frozenset({"harness_error", "policy_error"})
#: Failure categories that mean the model provider failed.
PROVIDER_FAILURES = frozenset({"provider_error"})

EPILOG = """exit codes:
  0  every role passed (or finished, for a request outside the suite) and training finished
  1  the run ended but a role failed, or without a finished training run
  2  bad input or usage (unknown option or value, missing folder, unreadable data)
  3  the model provider cannot be used: missing API key (the message names the variable),
     provider package missing, or the provider failed during the run
  4  harness error: the system, not the model, failed (please report it)
  130 interrupted"""


def run_exit_code(report: dict[str, Any]) -> int:
    """The exit code of a finished ``fedagentbench run`` from its ``report.json``.

    The worst thing that happened decides: a harness error (4) over a provider failure (3) over a
    failed role or a missing training result (1).
    """
    categories = {o.get("failure") for o in report.get("outcomes", []) if not o.get("success")}
    categories |= {r.get("failure_category") for r in report.get("roles", {}).values()}
    if categories & HARNESS_FAILURES:
        return HARNESS
    if categories & PROVIDER_FAILURES:
        return PROVIDER
    # a role unscored for want of a reference table is reported with the command to compute it, not failed
    roles_ok = all(r.get("success") or r.get("failure_category") == "not_calibrated"
                   for r in report.get("roles", {}).values())
    outcomes_ok = all(o.get("success") for o in report.get("outcomes", []))
    trained = (report.get("training") or {}).get("status") == "finished" and bool(report.get("metrics"))
    return OK if roles_ok and outcomes_ok and report.get("roles") and trained else ROLE_FAILED
