"""The client subgraph: what one hospital's agent does in each phase, with its own tools only.

The server reaches it with ``Send`` once per phase; it sees its task, binds its role's agent (compiled
once, with the graph) to tools bound to its own workspace, and returns only boundary messages (keyed by its site id), role outcomes and usage.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from graphs.phases import RoleAgents, build_role_agents, run_role
from graphs.runtime import runtime
from graphs.state import ClientTask, ServerState, merge
from graphs.toolsets import site_tools


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


def select(state: ClientState, config: RunnableConfig, *, agents: RoleAgents) -> dict[str, Any]:
    """C1: which of this site's datasets fit the task."""
    site, rt = state["site_id"], runtime(config)
    result, outcome, usage, events = run_role("C1", rt, site_tools(rt.site_dir(site), "C1"),
                                              {"site_id": site, "task_spec": state["task_spec"]}, config, site,
                                              agents=agents)
    reply = result or {"site_id": site, "selected": [], "reason": f"C1 failed: {outcome['reason']}"}
    return {"selections": {site: reply}, "outcomes": [outcome], "usage": usage, "events": events}


def prepare(state: ClientState, config: RunnableConfig, *, agents: RoleAgents) -> dict[str, Any]:
    """C2: organise and clean the approved datasets."""
    site, rt = state["site_id"], runtime(config)
    payload = {"site_id": site, "task_spec": state["task_spec"], "selection": state["selection"]}
    result, outcome, usage, events = run_role("C2", rt, site_tools(rt.site_dir(site), "C2"), payload, config, site,
                                              agents=agents)
    return {"preprocess": {site: result} if result else {}, "outcomes": [outcome], "usage": usage, "events": events}


def harmonize(state: ClientState, config: RunnableConfig, *, agents: RoleAgents) -> dict[str, Any]:
    """C3: map local labels to the task's classes and report aggregate statistics."""
    site, rt = state["site_id"], runtime(config)
    payload = {"site_id": site, "task_spec": state["task_spec"], "selection": state["selection"]}
    result, outcome, usage, events = run_role("C3", rt, site_tools(rt.site_dir(site), "C3"), payload, config, site,
                                              agents=agents)
    return {"harmonization": {site: result} if result else {}, "outcomes": [outcome], "usage": usage,
            "events": events}


def route_phase(state: ClientState) -> Literal["select", "prepare"]:
    return "select" if state["phase"] == "select" else "prepare"


def after_prepare(state: ClientState) -> Literal["harmonize", "__end__"]:
    return "harmonize" if state.get("preprocess", {}).get(state["site_id"]) else END


def build_client_graph(agents: RoleAgents | None = None) -> CompiledStateGraph:
    """The per-hospital subgraph (phase "select": C1; phase "prepare": C2 then C3).

    Args:
        agents: the compiled role agents to run (default: a fresh set, compiled now).
    """
    agents = agents if agents is not None else build_role_agents()
    g = StateGraph(ClientState, input_schema=ClientTask, output_schema=ClientOutput)
    g.add_node("select", partial(select, agents=agents))
    g.add_node("prepare", partial(prepare, agents=agents))
    g.add_node("harmonize", partial(harmonize, agents=agents))
    g.add_conditional_edges(START, route_phase)
    g.add_edge("select", END)
    g.add_conditional_edges("prepare", after_prepare)
    g.add_edge("harmonize", END)
    return g.compile(name="client")


__all__ = ["ServerState", "build_client_graph"]
