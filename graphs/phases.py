"""Running one role inside a graph node: build its agent, give it its input, record how it ended."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.errors import GraphBubbleUp

from graphs.roles import build_agent
from graphs.runtime import Runtime
from graphs.state import RoleOutcome

log = logging.getLogger(__name__)


def emit(event: dict[str, Any]) -> None:
    """Stream a progress event (role, site, what happened) to whoever watches the run."""
    try:
        get_stream_writer()(event)
    except Exception as exc:  # noqa: BLE001  outside a streaming run there is no writer; progress is optional
        log.debug("progress event not streamed: %s", exc)


def run_role(code: str, rt: Runtime, tools: list[BaseTool], payload: dict[str, Any], config: RunnableConfig,
             site_id: str | None = None) -> tuple[dict | None, RoleOutcome, list, list[dict]]:
    """Run role ``code`` on ``payload`` (its input, as JSON); return (result, outcome, usage, events)."""
    agent = build_agent(code, rt.model, tools, rt.guidance, site_id=site_id)
    emit({"role": code, "site": site_id, "event": "start"})
    start, started = time.perf_counter(), time.time()
    try:
        final = agent.invoke({"messages": [HumanMessage(json.dumps(payload, indent=1, default=str))]},
                             {**config, "recursion_limit": 4 * agent_steps(code) + 10})
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
    from graphs.roles import ROLES

    return ROLES[code].max_steps


def save_transcript(rt: Runtime, code: str, site_id: str | None, messages: list) -> None:
    """Append the role's whole conversation to ``<run_dir>/transcripts/<role>[_<site>].jsonl``."""
    from langchain_core.messages import messages_to_dict

    folder = rt.run_dir / "transcripts"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{code}_{site_id}" if site_id else code
    with open(folder / f"{name}.jsonl", "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(m, default=str) + "\n" for m in messages_to_dict(messages))
