"""Running one role inside a graph node: bind its agent to the run, give it its input, record how it ended.

Every role's agent is compiled once, in both prompt styles, by :func:`build_role_agents` when the
server graph is built (so a missing prompt or a clash of tool names fails the build, not a run).
"""

from __future__ import annotations

import json
import logging
import time
from functools import cache
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.errors import GraphBubbleUp
from langgraph.graph.state import CompiledStateGraph

from graphs.binding import Binding, with_binding
from graphs.roles import GUIDANCE, ROLES, build_agent
from graphs.runtime import Runtime
from graphs.state import RoleOutcome
from graphs.toolsets import declared_tools

#: (role code, prompt style) -> the role's compiled agent.
RoleAgents = dict[tuple[str, str], CompiledStateGraph]

log = logging.getLogger(__name__)


def emit(event: dict[str, Any]) -> None:
    """Stream a progress event (role, site, what happened) to whoever watches the run."""
    try:
        get_stream_writer()(event)
    except Exception as exc:  # noqa: BLE001  outside a streaming run there is no writer; progress is optional
        log.debug("progress event not streamed: %s", exc)


def build_role_agents() -> RoleAgents:
    """Every role's agent in every prompt style, compiled with its declared tools and no model."""
    return {(code, style): build_agent(code, None, declared_tools(code), style)  # type: ignore[arg-type]
            for code in ROLES for style in GUIDANCE}


@cache
def default_agents() -> RoleAgents:
    """One process-wide set, for callers that run roles outside a server graph (benchmarks)."""
    return build_role_agents()


def run_role(code: str, rt: Runtime, tools: list[BaseTool], payload: dict[str, Any], config: RunnableConfig,
             site_id: str | None = None, *, agents: RoleAgents | None = None
             ) -> tuple[dict | None, RoleOutcome, list, list[dict]]:
    """Run role ``code`` on ``payload`` (its input, as JSON); return (result, outcome, usage, events).

    Args:
        tools: the role's tools bound to this run (the same names as its declared tools).
        agents: the compiled agents of the graph running the role (default: :func:`default_agents`).
    """
    agents = agents if agents is not None else default_agents()
    if (code, rt.guidance) not in agents:
        raise ValueError(f"no {code} agent for guidance {rt.guidance!r}; use one of {GUIDANCE}")
    agent = agents[(code, rt.guidance)]
    emit({"role": code, "site": site_id, "event": "start"})
    start, started = time.perf_counter(), time.time()
    try:
        run_config = with_binding({**config, "recursion_limit": 4 * agent_steps(code) + 10},
                                  Binding(rt.model, tuple(tools), site_id))
        final = agent.invoke({"messages": [HumanMessage(json.dumps(payload, indent=1, default=str))]}, run_config)
    except GraphBubbleUp:  # interrupts and the like belong to the graph, not to the role
        raise
    except Exception as exc:  # the harness, not the model, failed: record it, never crash the run
        log.exception("%s%s: harness error", code, f"@{site_id}" if site_id else "")
        final = {"failure": "harness_error", "reason": f"{type(exc).__name__}: {exc}"[:300]}
    seconds = time.perf_counter() - start
    messages = final.get("messages", [])
    tool_calls = [c for m in messages for c in (getattr(m, "tool_calls", None) or [])]
    events = [{"role": code, "site": site_id, "tool": c["name"]} for c in tool_calls]
    for e in events:
        emit(e)
    save_transcript(rt, code, site_id, messages)
    result = final.get("result")
    failure = None if result is not None else (final.get("failure") or "no_submission")
    outcome = RoleOutcome(role=code, site_id=site_id, success=result is not None, failure=failure,
                          reason=final.get("reason", "") if failure else "submitted", steps=final.get("steps", 0),
                          tool_calls=len(tool_calls), seconds=round(seconds, 3), started=started,
                          ended=time.time())
    emit({"role": code, "site": site_id, "event": "end", "success": outcome["success"],
          "failure": failure, "seconds": outcome["seconds"]})
    return result, outcome, final.get("usage", []), events


def agent_steps(code: str) -> int:
    return ROLES[code].max_steps


def save_transcript(rt: Runtime, code: str, site_id: str | None, messages: list) -> None:
    """Append the role's whole conversation to ``<run_dir>/transcripts/<role>[_<site>].jsonl``."""
    from langchain_core.messages import messages_to_dict

    folder = rt.run_dir / "transcripts"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{code}_{site_id}" if site_id else code
    with open(folder / f"{name}.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(m, default=str) + "\n" for m in messages_to_dict(messages))
