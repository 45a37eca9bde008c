"""The server graph: the user's sentence in, a finished FL run and a record of every role out.

    S1 plan -> Send C1 to every site -> S2 coordinate -> [gate: sites] -> Send C2+C3 to approved sites
    -> [gate: label maps] -> S3 select algorithm -> [gate: launch] -> S4 train -> end

Each gate is a node of its own after the role it reviews (:mod:`graphs.gates`), so resuming an
interrupt never runs a finished role again. Every role's agent is compiled once, here, when the graph
is built. A failed role is recorded and the graph goes on to the end with what it has; every path
reaches END. Gates ask (``interrupt``) only when the run's ``approve`` setting is ``"ask"``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send

from graphs.client import build_client_graph
from graphs.gates import after_launch, approve_launch, approve_sites, review_maps, training_sites
from graphs.phases import RoleAgents, build_role_agents, run_role
from graphs.runtime import runtime
from graphs.state import ServerState
from graphs.toolsets import selection_tools, training_tools


def plan(state: ServerState, config: RunnableConfig, *, agents: RoleAgents) -> dict[str, Any]:
    """S1: the request becomes a task spec; the site list comes from the server's own registry."""
    rt = runtime(config)
    sites = state.get("sites") or rt.site_ids()
    result, outcome, usage, events = run_role("S1", rt, [], {"request": state["request"]}, config, agents=agents)
    return {"task_spec": result, "sites": sites, "outcomes": [outcome], "usage": usage, "events": events}


def fan_out_select(state: ServerState) -> list[Send] | Literal["finish"]:
    if not state.get("task_spec"):
        return "finish"
    return [Send("clients_select", {"site_id": s, "phase": "select", "task_spec": state["task_spec"],
                                    "selection": None}) for s in state["sites"]]


def coordinate(state: ServerState, config: RunnableConfig, *, agents: RoleAgents) -> dict[str, Any]:
    """S2: propose the sites with usable data (a human may review them at the next node)."""
    rt = runtime(config)
    payload = {"task_spec": state["task_spec"], "selections": state.get("selections", {})}
    result, outcome, usage, events = run_role("S2", rt, [], payload, config, agents=agents)
    approvals = {a["site_id"]: a for a in (result or {}).get("approvals", [])}
    return {"approvals": approvals, "outcomes": [outcome], "usage": usage, "events": events}


def fan_out_prepare(state: ServerState) -> list[Send] | Literal["finish"]:
    approved = [s for s, a in state.get("approvals", {}).items() if a.get("approved") and s in state["selections"]]
    if not approved:
        return "finish"
    return [Send("clients_prepare", {"site_id": s, "phase": "prepare", "task_spec": state["task_spec"],
                                     "selection": state["selections"][s]}) for s in sorted(approved)]


def after_review(state: ServerState) -> Literal["select_algorithm", "finish"]:
    return "select_algorithm" if training_sites(state) else "finish"


def select_algorithm(state: ServerState, config: RunnableConfig, *, agents: RoleAgents) -> dict[str, Any]:
    """S3: one algorithm from the catalog, from the task and the clients' aggregates."""
    rt = runtime(config)
    sites = training_sites(state)
    stats = {s: {**state["harmonization"][s].get("statistics", {}),
                 "class_counts": state["harmonization"][s].get("class_counts", {})} for s in sites}
    result, outcome, usage, events = run_role("S3", rt, selection_tools(lambda: stats),
                                              {"task_spec": state["task_spec"], "sites": sites}, config,
                                              agents=agents)
    return {"algorithm": result, "outcomes": [outcome], "usage": usage, "events": events}


def after_selection(state: ServerState) -> Literal["approve_launch", "finish"]:
    return "approve_launch" if state.get("algorithm") and training_sites(state) else "finish"


#: Training settings S4 is given and passes to launch_training itself (the others are fixed defaults).
_ASKED = ("rounds", "local_epochs", "baselines", "engine")


def train(state: ServerState, config: RunnableConfig, *, agents: RoleAgents) -> dict[str, Any]:
    """S4: launch, watch and report the training run on the sites the launch gate let through."""
    rt = runtime(config)
    sites = (state.get("launch") or {}).get("sites") or training_sites(state)
    dirs = {s: rt.site_dir(s) / "work" / "harmonized" for s in sites}
    fixed = {k: v for k, v in rt.train.items() if k not in _ASKED}
    tools = training_tools(dirs, rt.run_dir / "training", fixed)
    settings = {k: rt.train[k] for k in _ASKED if k in rt.train}
    payload = {"algorithm": state["algorithm"], "sites": sites, "task_spec": state["task_spec"],
               "settings": settings}
    result, outcome, usage, events = run_role("S4", rt, tools, payload, config, agents=agents)
    return {"training": result, "outcomes": [outcome], "usage": usage, "events": events}


def finish(state: ServerState) -> dict[str, Any]:
    return {"events": [{"event": "finished"}]}


def build_graph(checkpointer: Any = None) -> CompiledStateGraph:
    """The server graph. Model, prompt style, paths and gates come from the run's config.

    Raises:
        ValueError: a role's agent cannot be wired (a missing prompt, clashing tool names).
    """
    agents = build_role_agents()
    client = build_client_graph(agents)
    g = StateGraph(ServerState)
    g.add_node("plan", partial(plan, agents=agents))
    g.add_node("clients_select", client)
    g.add_node("coordinate", partial(coordinate, agents=agents))
    g.add_node("approve_sites", approve_sites)
    g.add_node("clients_prepare", client)
    g.add_node("review_maps", review_maps)
    g.add_node("select_algorithm", partial(select_algorithm, agents=agents))
    g.add_node("approve_launch", approve_launch)
    g.add_node("train", partial(train, agents=agents))
    g.add_node("finish", finish)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", fan_out_select, ["clients_select", "finish"])
    g.add_edge("clients_select", "coordinate")
    g.add_edge("coordinate", "approve_sites")
    g.add_conditional_edges("approve_sites", fan_out_prepare, ["clients_prepare", "finish"])
    g.add_edge("clients_prepare", "review_maps")
    g.add_conditional_edges("review_maps", after_review)
    g.add_conditional_edges("select_algorithm", after_selection)
    g.add_conditional_edges("approve_launch", after_launch)
    g.add_edge("train", "finish")
    g.add_edge("finish", END)
    return g.compile(checkpointer=checkpointer, name="fedagentbench")
