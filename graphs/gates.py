"""The human gates: nodes of their own, after the role whose output they review.

LangGraph runs an interrupted node again from its start when the run resumes. A gate therefore
holds nothing but the question and the decision: the role it reviews has finished, and its output is
in the checkpointed state, before the gate asks. Resuming (after an answer, or after a crash between
the role and its gate) runs the gate again, never the role.

Answers (the same at every gate; ``fedagentbench run --approve ask`` sends them):

* approve: ``True``, ``"yes"``, ``"y"``, ``"approve"`` or ``""`` keeps the proposal;
* reject: ``False``, ``None``, ``"no"``, ``"n"``, ``"reject"`` or ``[]`` keeps none of it;
* edit: a list of site ids (or one string of ids separated by spaces or commas) keeps only those.

An answer naming a site the proposal does not hold is not guessed at: the gate asks again, saying
which ids it can take.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt

from graphs.runtime import runtime
from graphs.state import ServerState

APPROVE = (True, "yes", "y", "approve", "")
REJECT = (False, None, "no", "n", "reject")
UNKNOWN_SITES = "{unknown} {verb} not among the sites you can keep ({known}); answer yes, no, or some of those ids"
BAD_ANSWER = "cannot read the answer {answer!r}; answer yes, no, or a list of site ids to keep"


def decide(answer: Any, proposed: Iterable[str]) -> list[str]:
    """The site ids a human's answer keeps out of ``proposed`` (ValueError says what it can take)."""
    proposed = sorted(proposed)
    if isinstance(answer, str):
        word = answer.strip().lower()
        if word in APPROVE:
            return proposed
        if word in REJECT:
            return []
        answer = [a for a in re.split(r"[\s,]+", answer.strip()) if a]
    elif answer is True:
        return proposed
    elif answer is False or answer is None:
        return []
    if not isinstance(answer, (list, tuple, set)) or not all(isinstance(a, str) for a in answer):
        raise ValueError(BAD_ANSWER.format(answer=answer))
    unknown = sorted(set(answer) - set(proposed))
    if unknown:
        raise ValueError(UNKNOWN_SITES.format(unknown=", ".join(unknown), verb="is" if len(unknown) == 1 else "are",
                                              known=", ".join(proposed) or "none"))
    return sorted(set(answer))


def ask(question: dict[str, Any], read: Callable[[Any], list[str]]) -> list[str]:
    """Interrupt with ``question`` until the answer reads; a bad answer is asked again with the reason."""
    pending = question
    while True:
        answer = interrupt(pending)
        try:
            return read(answer)
        except ValueError as exc:
            pending = {**question, "error": str(exc)}


def _asks(config: RunnableConfig) -> bool:
    return runtime(config).approve == "ask"


def approve_sites(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """Gate after S2: a human keeps some, all or none of the sites S2 approved."""
    approvals = state.get("approvals") or {}
    proposed = [s for s, a in approvals.items() if a.get("approved")]
    if not _asks(config) or not approvals:
        return {}
    keep = ask({"gate": "sites", "question": "Approve these sites?", "approvals": approvals},
               lambda answer: decide(answer, proposed))
    decided = {s: {**a, "approved": s in keep} if a.get("approved") and s not in keep else a
               for s, a in approvals.items()}
    return {"approvals": decided, "gates": {"sites": {"proposed": sorted(proposed), "kept": keep}},
            "events": [{"gate": "sites", "event": "decided", "kept": keep}]}


def review_maps(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """Gate after C3: a human may reject a site's label map (that site then does not train)."""
    harmonized = {s: r for s, r in (state.get("harmonization") or {}).items() if r}
    if not _asks(config) or not harmonized:
        return {}
    maps = {s: r["label_map"] for s, r in harmonized.items()}
    keep = ask({"gate": "label_maps", "question": "Accept these label maps?", "label_maps": maps},
               lambda answer: decide(answer, maps))
    return {"harmonization": {s: {**r, "rejected": s not in keep} for s, r in harmonized.items()},
            "gates": {"label_maps": {"proposed": sorted(maps), "kept": keep}},
            "events": [{"gate": "label_maps", "event": "decided", "kept": keep}]}


def training_sites(state: ServerState) -> list[str]:
    """Sites whose accepted label map left images to train on."""
    return sorted(s for s, r in (state.get("harmonization") or {}).items()
                  if r and not r.get("rejected") and sum(r.get("class_counts", {}).values()) > 0)


def approve_launch(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """Gate after S3: a human launches training on all, some or none of the training sites."""
    sites = training_sites(state)
    if not _asks(config):
        return {"launch": {"approved": True, "sites": sites}}
    keep = ask({"gate": "launch", "question": "Launch training?", "algorithm": state.get("algorithm"),
                "sites": sites}, lambda answer: decide(answer, sites))
    events = [{"gate": "launch", "event": "decided", "kept": keep}] + (
        [] if keep else [{"role": "S4", "event": "launch declined by a human"}])
    return {"launch": {"approved": bool(keep), "sites": keep},
            "gates": {"launch": {"proposed": sites, "kept": keep}}, "events": events}


def after_launch(state: ServerState) -> Literal["train", "finish"]:
    launch = state.get("launch") or {}
    return "train" if launch.get("approved") and launch.get("sites") else "finish"
