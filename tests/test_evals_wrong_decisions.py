"""Deliberately wrong decisions: the scripted policy with one role altered makes exactly that role's
scorer fail (and no other role, none of these alterations having declared dependents). The training
phase's wrong decisions (a poorly performing algorithm, a run launched too short) are judged by
measured outcomes, in tests/test_evals_outcome_decisions.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from graphs.scripted.model import ScriptedChatModel, Transcript

pytestmark = pytest.mark.slow

Alter = Callable[[Transcript, str, dict[str, Any]], dict[str, Any]]
TASK = "derm-binary-cancer"  # generic algorithms acceptable, two target classes, several qualifying sites


class AlteredScripted(ScriptedChatModel):
    """The scripted policy, except that the role submitting ``target_schema`` has its calls rewritten."""

    target_schema: str
    alter: Alter

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        result = super()._generate(messages, stop, run_manager, **kwargs)
        if f"submit_{self.target_schema}" not in self.tool_names:
            return result
        call = result.generations[0].message.tool_calls[0]
        args = self.alter(Transcript(messages, self.tool_names), call["name"], dict(call["args"]))
        msg = AIMessage("", tool_calls=[{**call, "args": args}])
        return ChatResult(generations=[ChatGeneration(message=msg)])


def dismiss_one_site(t: Transcript, tool: str, args: dict) -> dict:
    """S2 dismisses the first site it would approve: a qualifying site is left out."""
    if tool == "submit_Approvals":
        first = next(a for a in args["approvals"] if a["approved"])
        first.update(approved=False, reason="dismissed on purpose")
    return args


def swap_two_classes(t: Transcript, tool: str, args: dict) -> dict:
    """C3 maps every label of the first target class to the second and vice versa."""
    a, b = (c["name"] for c in t.input["task_spec"]["target_classes"][:2])
    swap = {a: b, b: a}
    for field in ("mapping", "label_map"):
        if tool in ("apply_label_map", "submit_HarmonizationReport") and field in args:
            args[field] = {k: swap.get(v, v) for k, v in args[field].items()}
    return args


@pytest.mark.parametrize("schema, alter, role", [
    ("Approvals", dismiss_one_site, "S2"),
    ("HarmonizationReport", swap_two_classes, "C3"),
], ids=["wrong-site", "wrong-label-map"])
def test_a_wrong_decision_fails_exactly_its_role(built_envs, tmp_path, schema, alter, role):
    from graphs.server import build_graph
    from tests.graph_helpers import private_env, run_config, score_run

    built = built_envs("dermatoscopy")
    task = built.key.tasks[TASK]
    assert len(task.qualifying) >= 2, "dismissing one site must leave a federation to train"
    env = private_env(built, tmp_path)
    model = AlteredScripted(target_schema=schema, alter=alter)
    state = build_graph().invoke({"request": task.request}, run_config(env, tmp_path / "run", model=model))
    scores = score_run(state, built.key, TASK, env, tmp_path / "run")
    assert scores[role].passed is False and scores[role].failure_category == "wrong_decision", scores[role]
    # C2's pass also depends on cleaning thresholds being calibrated elsewhere; it is judged by its own
    # scorer on the sites that were prepared, which none of these alterations change.
    others = {r: s.explanation for r, s in scores.items() if r not in (role, "C2") and not s.passed}
    assert not others, others
