"""One role agent: a model node and a ``ToolNode`` in a loop, ending with a typed submission.

The role's message schema is offered as one more tool, ``submit_<schema>``; the loop ends when that
call validates. Every model mistake becomes a message the model can act on (bad arguments, unknown
tool, invalid submission, prose instead of a tool call) until the step budget is spent; provider
errors are retried with backoff. Whatever happens, the graph ends with a result or a named failure.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command
from pydantic import BaseModel, create_model

from graphs.state import AgentState
from graphs.text_calls import with_text_call
from graphs.usage import usage_row

log = logging.getLogger(__name__)

#: Texts the loop sends the model; constants so tests and prompts can refer to them.
NUDGE = "You answered without calling a tool. Continue with a tool call; finish by calling {submit}."
STEP_LIMIT = "step limit of {n} model calls reached before {submit} was called"
PROVIDER = "the model provider failed {n} times: {error}"
REPEATED = "made the same call {call} {n} times in a row with the same result; it was not making progress"
CYCLED = "went through the same calls {call} {n} times in a row with the same results; it was not making progress"
UNPARSABLE = ("Your last answer was a tool call the server could not parse ({error}). Call the tool again "
              "with complete, valid JSON arguments and short text values; finish by calling {submit}.")
#: What OpenAI-compatible servers say when the model's own output is not a valid tool call (llama-server
#: answers 500 "Failed to parse tool call arguments as JSON", e.g. when a call is cut by max_tokens). It
#: is the model's mistake, deterministic at temperature 0: told to the model, never retried as is.
UNPARSABLE_MARKERS = ("failed to parse tool call",)
MAX_NUDGES = 2
#: The same call answered by the same result this many times in a row ends the role: a model that
#: loops cannot recover within its budget (measured: Qwen2.5-Coder-0.5B repeated one C2 call until
#: its 40-step budget ran out), and every further call costs a full prompt.
MAX_REPEATS = 3
RETRIES = 3
BACKOFF_S = 0.5


def submit_tool_name(schema: type[BaseModel]) -> str:
    return f"submit_{schema.__name__}"


def make_submit_tool(schema: type[BaseModel]) -> BaseTool:
    """A tool whose arguments are the role's message; a valid call ends the loop with that result."""
    name = submit_tool_name(schema)
    args = create_model(f"{schema.__name__}Submission", __base__=schema,
                        tool_call_id=(Annotated[str, InjectedToolCallId], ...))

    def submit(tool_call_id: str, **fields: Any) -> Command:
        result = schema.model_validate(fields).model_dump(mode="json")
        return Command(update={"result": result,
                               "messages": [ToolMessage("Submitted. You are done.", tool_call_id=tool_call_id,
                                                        name=name)]})

    return StructuredTool.from_function(
        func=submit, name=name, args_schema=args, handle_validation_error=_validation_message,
        description=f"Finish your work: submit your final {schema.__name__}. {schema.__doc__ or ''}".strip(),
    )


def _validation_message(exc: Exception) -> str:
    return f"Your submission is invalid: {exc}. Fix the listed fields and call the submit tool again."[:1500]


def repeated_call(messages: list[Any], times: int, longest_cycle: int = 2) -> list[str] | None:
    """The calls (``name(args)``, in order) of the loop the last model turns are in: one call, or one
    short cycle of calls, repeated ``times`` times over, each getting the same answer every time.

    A long-polling status tool answers differently once a round ends, and a fixed mistake gets a
    different answer, so only a true loop matches. Cycles of two count too: the 1.5B model
    alternated ``read_data_cards`` and ``list_labels`` on a raw folder, with the same refusal each
    time, until its step budget ran out.
    """
    turns: list[tuple[str, str]] = []
    answers: dict[str, str] = {}
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            answers[m.tool_call_id] = str(m.content)
        elif isinstance(m, AIMessage):
            if len(m.tool_calls) != 1 or m.tool_calls[0]["id"] not in answers:
                break
            call = m.tool_calls[0]
            turns.append((f"{call['name']}({json.dumps(call['args'], sort_keys=True)})", answers[call["id"]]))
            if len(turns) == times * longest_cycle:
                break
        elif not isinstance(m, HumanMessage):
            break
    for period in range(1, longest_cycle + 1):
        recent = turns[:period * times]
        if len(recent) == period * times and len(set(recent)) == period and \
                all(recent[i] == recent[i + period] for i in range(len(recent) - period)):
            return [call[:200] for call, _ in reversed(recent[:period])]
    return None


def build_role_agent(model: BaseChatModel, tools: list[BaseTool], *, role: str, system_prompt: str,
                     output: type[BaseModel], max_steps: int = 30, site_id: str | None = None,
                     checkpointer: Any = None) -> CompiledStateGraph:
    """Compile the loop for one role.

    Args:
        model: any chat model that can ``bind_tools``.
        tools: the role's tools (already bound to its workspace).
        role: "S1".."S4", "C1".."C3" (for usage rows and logs).
        system_prompt: the role's prompt (fine-grained or goal-oriented).
        output: the pydantic message the role must submit.
        max_steps: model calls allowed before the role fails with ``step_limit``.
        site_id: the client's id for client roles (usage rows).
    """
    if not hasattr(model, "bind_tools"):
        raise ValueError(f"the {role} model {type(model).__name__} cannot bind tools; use a tool-calling chat model")
    submit = make_submit_tool(output)
    all_tools = [*tools, submit]
    names = [t.name for t in all_tools]
    if len(set(names)) != len(names):
        raise ValueError(f"{role}: duplicate tool names {names}")
    bound = model.bind_tools(all_tools)
    tools_text = "\n".join(  # the tool schemas a provider would also bill as input
        t.name + (t.description or "") + json.dumps(t.tool_call_schema.model_json_schema()) for t in all_tools)
    system = SystemMessage(system_prompt)

    def call_model(state: AgentState) -> dict:
        steps = state.get("steps", 0) + 1
        if steps > max_steps:
            return {"failure": "step_limit", "reason": STEP_LIMIT.format(n=max_steps, submit=submit.name)}
        looping = repeated_call(state["messages"], MAX_REPEATS)
        if looping:
            text = REPEATED if len(looping) == 1 else CYCLED
            return {"failure": "repeated_call", "reason": text.format(call=" then ".join(looping), n=MAX_REPEATS)}
        prompt = [system, *state["messages"]]
        error: Exception | None = None
        for attempt in range(RETRIES):
            start = time.perf_counter()
            try:
                reply = bound.invoke(prompt)
                break
            except Exception as exc:  # noqa: BLE001  any provider failure: retried, then recorded, never raised
                if any(m in str(exc).lower() for m in UNPARSABLE_MARKERS):
                    return _nudged(state, steps, UNPARSABLE.format(error=str(exc)[:200], submit=submit.name))
                error = exc
                log.warning("%s%s: model call failed (attempt %d): %s", role, f"@{site_id}" if site_id else "",
                            attempt + 1, exc)
                time.sleep(BACKOFF_S * 2**attempt)
        else:
            return {"steps": steps, "failure": "provider_error",
                    "reason": PROVIDER.format(n=RETRIES, error=f"{type(error).__name__}: {error}"[:300])}
        row = usage_row(role, site_id, prompt, reply, time.perf_counter() - start, tools_text)
        recovered = with_text_call(reply, names)
        if recovered is not None:  # a call written as text: taken, and counted as a format slip
            reply, row = recovered, {**row, "tool_calls": 1, "format_slips": 1}
        update: dict[str, Any] = {"messages": [reply], "steps": steps, "usage": [row]}
        if not reply.tool_calls:
            update.update(_nudged(state, steps, NUDGE.format(submit=submit.name)))
            update["messages"] = [reply, *update.get("messages", [])]
        return update

    def _nudged(state: AgentState, steps: int, text: str) -> dict[str, Any]:
        """Tell the model it made no usable call; after ``MAX_NUDGES`` times, a ``format_error``."""
        nudges = state.get("nudges", 0) + 1
        if nudges > MAX_NUDGES:
            return {"steps": steps, "failure": "format_error",
                    "reason": f"made no usable tool call {nudges} times (prose or unparsable calls) instead of "
                              f"calling {submit.name}"}
        return {"steps": steps, "nudges": nudges, "messages": [HumanMessage(text)]}

    def route_model(state: AgentState) -> Literal["tools", "agent", "__end__"]:
        if state.get("failure"):
            return END
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else "agent"

    def route_tools(state: AgentState) -> Literal["agent", "__end__"]:
        return END if state.get("result") is not None else "agent"

    graph = StateGraph(AgentState)
    graph.add_node("agent", call_model)
    graph.add_node("tools", ToolNode(all_tools, handle_tool_errors=True))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route_model)
    graph.add_conditional_edges("tools", route_tools)
    return graph.compile(checkpointer=checkpointer, name=f"{role}_agent")
