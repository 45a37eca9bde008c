"""The server graph: the user's sentence in, a finished FL run and a record of every role out.

    S1 plan -> Send C1 to every site -> S2 coordinate [gate: sites] -> Send C2+C3 to approved sites
    [gate: label maps] -> S3 select algorithm -> [gate: launch] S4 train -> end

A failed role is recorded and the graph goes on to the end with what it has; every path reaches END.
Gates use ``interrupt`` when the run's ``approve`` setting is ``"ask"``.
"""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Send, interrupt

from graphs.client import build_client_graph
from graphs.phases import run_role
from graphs.runtime import runtime
from graphs.state import ServerState


def plan(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """S1: the request becomes a task spec; the site list comes from the server's own registry."""
    rt = runtime(config)
    sites = state.get("sites") or rt.site_ids()
    result, outcome, usage, events = run_role("S1", rt, [], {"request": state["request"]}, config)
    return {"task_spec": result, "sites": sites, "outcomes": [outcome], "usage": usage, "events": events}


def fan_out_select(state: ServerState) -> list[Send] | Literal["finish"]:
    if not state.get("task_spec"):
        return "finish"
    return [Send("clients_select", {"site_id": s, "phase": "select", "task_spec": state["task_spec"],
                                    "selection": None}) for s in state["sites"]]


def coordinate(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """S2: approve sites with usable data; optionally a human confirms."""
    rt = runtime(config)
    payload = {"task_spec": state["task_spec"], "selections": state.get("selections", {})}
    result, outcome, usage, events = run_role("S2", rt, [], payload, config)
    approvals = {a["site_id"]: a for a in (result or {}).get("approvals", [])}
    if rt.approve == "ask":
        answer = interrupt({"gate": "sites", "question": "Approve these sites?", "approvals": approvals})
        approvals = _apply_human(approvals, answer, "approved")
    return {"approvals": approvals, "outcomes": [outcome], "usage": usage, "events": events}


def _apply_human(items: dict[str, dict], answer: Any, key: str) -> dict[str, dict]:
    """A human's answer: True keeps the proposal; a list of site ids keeps only those."""
    if answer is True or answer in ("yes", "y", "approve"):
        return items
    keep = set(answer or [])
    return {s: {**v, key: v.get(key, True) and s in keep} for s, v in items.items()}


def fan_out_prepare(state: ServerState) -> list[Send] | Literal["finish"]:
    approved = [s for s, a in state.get("approvals", {}).items() if a.get("approved")]
    if not approved:
        return "finish"
    return [Send("clients_prepare", {"site_id": s, "phase": "prepare", "task_spec": state["task_spec"],
                                     "selection": state["selections"][s]}) for s in sorted(approved)]


def review_maps(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """Gate: a human may reject a site's label map (that site then does not train)."""
    rt = runtime(config)
    if rt.approve != "ask" or not state.get("harmonization"):
        return {}
    maps = {s: r["label_map"] for s, r in state["harmonization"].items()}
    answer = interrupt({"gate": "label_maps", "question": "Accept these label maps?", "label_maps": maps})
    if answer is True or answer in ("yes", "y", "approve"):
        return {}
    keep = set(answer or [])
    return {"harmonization": {s: {**r, "rejected": s not in keep} for s, r in state["harmonization"].items()}}


def training_sites(state: ServerState) -> list[str]:
    return sorted(s for s, r in (state.get("harmonization") or {}).items()
                  if r and not r.get("rejected") and sum(r.get("class_counts", {}).values()) > 0)


def after_review(state: ServerState) -> Literal["select_algorithm", "finish"]:
    return "select_algorithm" if training_sites(state) else "finish"


def select_algorithm(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """S3: one algorithm from the catalog, from the task and the clients' aggregates."""
    from tools.federate import make_selection_tools

    rt = runtime(config)
    sites = training_sites(state)
    stats = {s: {**state["harmonization"][s].get("statistics", {}),
                 "class_counts": state["harmonization"][s].get("class_counts", {})} for s in sites}
    tools = make_selection_tools(lambda: stats)
    result, outcome, usage, events = run_role("S3", rt, tools, {"task_spec": state["task_spec"], "sites": sites},
                                              config)
    return {"algorithm": result, "outcomes": [outcome], "usage": usage, "events": events}


def after_selection(state: ServerState) -> Literal["train", "finish"]:
    return "train" if state.get("algorithm") and training_sites(state) else "finish"


def train(state: ServerState, config: RunnableConfig) -> dict[str, Any]:
    """S4: launch, watch and report the training run (a human may hold the launch)."""
    from tools.federate import make_training_tools

    rt = runtime(config)
    sites = training_sites(state)
    if rt.approve == "ask":
        answer = interrupt({"gate": "launch", "question": "Launch training?", "algorithm": state["algorithm"],
                            "sites": sites})
        if not (answer is True or answer in ("yes", "y", "approve")):
            return {"events": [{"role": "S4", "event": "launch declined by a human"}]}
    dirs = {s: rt.site_dir(s) / "work" / "harmonized" for s in sites}
    fixed = {k: v for k, v in rt.train.items() if k not in ("rounds", "local_epochs", "baselines")}
    tools = make_training_tools(dirs, rt.run_dir / "training", fixed)
    settings = {k: rt.train[k] for k in ("rounds", "local_epochs", "baselines") if k in rt.train}
    payload = {"algorithm": state["algorithm"], "sites": sites, "task_spec": state["task_spec"],
               "settings": settings}
    result, outcome, usage, events = run_role("S4", rt, tools, payload, config)
    return {"training": result, "outcomes": [outcome], "usage": usage, "events": events}


def finish(state: ServerState) -> dict[str, Any]:
    return {"events": [{"event": "finished"}]}


def build_graph(checkpointer: Any = None) -> CompiledStateGraph:
    """The server graph. Model, prompts style, paths and gates come from the run's config."""
    client = build_client_graph()
    g = StateGraph(ServerState)
    g.add_node("plan", plan)
    g.add_node("clients_select", client)
    g.add_node("coordinate", coordinate)
    g.add_node("clients_prepare", client)
    g.add_node("review_maps", review_maps)
    g.add_node("select_algorithm", select_algorithm)
    g.add_node("train", train)
    g.add_node("finish", finish)
    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", fan_out_select, ["clients_select", "finish"])
    g.add_edge("clients_select", "coordinate")
    g.add_conditional_edges("coordinate", fan_out_prepare, ["clients_prepare", "finish"])
    g.add_edge("clients_prepare", "review_maps")
    g.add_conditional_edges("review_maps", after_review)
    g.add_conditional_edges("select_algorithm", after_selection)
    g.add_edge("train", "finish")
    g.add_edge("finish", END)
    return g.compile(checkpointer=checkpointer, name="fedagentbench")
