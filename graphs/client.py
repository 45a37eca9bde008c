"""The client subgraph: what one hospital's agent does in each phase, with its own tools only.

The server reaches it with ``Send`` once per phase; it sees its task, builds tools bound to its own
workspace, and returns only boundary messages (keyed by its site id), role outcomes and usage.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.phases import run_role
from graphs.runtime import runtime
from graphs.state import ClientTask, ServerState, merge


class ClientOutput(TypedDict, total=False):
    """What a client returns to the server: messages keyed by its site id, outcomes, usage."""

    selections: Annotated[dict, merge]
    preprocess: Annotated[dict, merge]
    harmonization: Annotated[dict, merge]
    outcomes: Annotated[list, operator.add]
    usage: Annotated[list, operator.add]
    events: Annotated[list, operator.add]


class ClientState(ClientTask, ClientOutput, total=False):
    pass


def _tools(config: RunnableConfig, site_id: str) -> dict[str, list]:
    from tools.client import make_client_tools
    from tools.sandbox import Workspace

    rt = runtime(config)
    return make_client_tools(Workspace.open(rt.site_dir(site_id)))


def _pick(tools: dict[str, list], name: str) -> list:
    """One named tool from the site's tool sets (C2 also reads cards and lists labels)."""
    return [t for role in tools.values() for t in role if t.name == name][:1]


def select(state: ClientState, config: RunnableConfig) -> dict[str, Any]:
    """C1: which of this site's datasets fit the task."""
    site = state["site_id"]
    tools = _tools(config, site)
    result, outcome, usage, events = run_role("C1", runtime(config), tools["C1"],
                                              {"site_id": site, "task_spec": state["task_spec"]}, config, site)
    reply = result or {"site_id": site, "selected": [], "reason": f"C1 failed: {outcome['reason']}"}
    return {"selections": {site: reply}, "outcomes": [outcome], "usage": usage, "events": events}


def prepare(state: ClientState, config: RunnableConfig) -> dict[str, Any]:
    """C2: organise and clean the approved datasets."""
    site = state["site_id"]
    tools = _tools(config, site)
    payload = {"site_id": site, "task_spec": state["task_spec"], "selection": state["selection"]}
    result, outcome, usage, events = run_role("C2", runtime(config), _pick(tools, "read_data_cards") + tools["C2"]
                                              + _pick(tools, "list_labels"), payload, config, site)
    return {"preprocess": {site: result} if result else {}, "outcomes": [outcome], "usage": usage, "events": events}


def harmonize(state: ClientState, config: RunnableConfig) -> dict[str, Any]:
    """C3: map local labels to the task's classes and report aggregate statistics."""
    site = state["site_id"]
    tools = _tools(config, site)
    payload = {"site_id": site, "task_spec": state["task_spec"], "selection": state["selection"]}
    result, outcome, usage, events = run_role("C3", runtime(config), tools["C3"], payload, config, site)
    return {"harmonization": {site: result} if result else {}, "outcomes": [outcome], "usage": usage,
            "events": events}


def route_phase(state: ClientState) -> Literal["select", "prepare"]:
    return "select" if state["phase"] == "select" else "prepare"


def after_prepare(state: ClientState) -> Literal["harmonize", "__end__"]:
    return "harmonize" if state.get("preprocess", {}).get(state["site_id"]) else END


def build_client_graph() -> CompiledStateGraph:
    """The per-hospital subgraph (phase "select": C1; phase "prepare": C2 then C3)."""
    g = StateGraph(ClientState, input_schema=ClientTask, output_schema=ClientOutput)
    g.add_node("select", select)
    g.add_node("prepare", prepare)
    g.add_node("harmonize", harmonize)
    g.add_conditional_edges(START, route_phase)
    g.add_edge("select", END)
    g.add_conditional_edges("prepare", after_prepare)
    g.add_edge("harmonize", END)
    return g.compile(name="client")


__all__ = ["ServerState", "build_client_graph"]
