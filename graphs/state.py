"""Graph states: the server's (parent) and one role agent's loop.

List fields name their reducer so branches (one per client) merge instead of overwriting. The server
state holds only the boundary messages of :mod:`graphs.messages` (as JSON dicts), role outcomes and
usage rows: never a path or a pixel.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, NotRequired, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages
from langgraph.managed import RemainingSteps


def merge(left: dict | None, right: dict | None) -> dict:
    """Reducer: per-site dicts from parallel client branches merge by key."""
    return {**(left or {}), **(right or {})}


class RoleOutcome(TypedDict):
    """How one role run ended (one per role and site)."""

    role: str
    site_id: str | None
    success: bool  # finished and submitted a valid message
    failure: str | None  # step_limit, repeated_call, format_error, provider_error, policy_error, harness_error, ...
    reason: str
    steps: int
    tool_calls: int
    seconds: float
    started: float  # epoch seconds, for per-phase wall time
    ended: float


class UsageRow(TypedDict):
    role: str
    site_id: str | None
    input_tokens: int
    output_tokens: int
    seconds: float
    tool_calls: int
    estimated: bool  # tokens estimated because the provider reported none
    format_slips: NotRequired[int]  # 1 when the call came as JSON text, not the tool-call channel


class ServerState(TypedDict, total=False):
    request: str
    sites: list[str]
    task_spec: dict | None
    selections: Annotated[dict[str, dict], merge]
    approvals: dict[str, dict]
    preprocess: Annotated[dict[str, dict], merge]
    harmonization: Annotated[dict[str, dict], merge]
    algorithm: dict | None
    launch: dict | None  # the launch gate's decision: {"approved": bool, "sites": [...]}
    gates: Annotated[dict[str, dict], merge]  # each gate's proposal and what the human kept
    training: dict | None
    outcomes: Annotated[list[RoleOutcome], operator.add]
    usage: Annotated[list[UsageRow], operator.add]
    events: Annotated[list[dict[str, Any]], operator.add]


class ClientTask(TypedDict):
    """What the server sends one client with ``Send``: the phase and the messages it needs."""

    site_id: str
    phase: str  # "select" | "prepare"
    task_spec: dict
    selection: dict | None


class AgentState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    result: dict | None
    failure: str | None
    reason: str
    steps: int
    nudges: int
    usage: Annotated[list[UsageRow], operator.add]
    remaining_steps: RemainingSteps  # supersteps left before the recursion limit (managed by LangGraph)
