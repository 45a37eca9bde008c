"""One role agent: a model node and a ``ToolNode`` in a loop, ending with a typed submission.

The role's message schema is offered as one more tool, ``submit_<schema>``; the loop ends when that
call validates. Every model mistake becomes a message the model can act on (bad arguments, unknown
tool, invalid submission, prose instead of a tool call) until the step budget is spent; provider
errors are retried with backoff by the model node's ``RetryPolicy`` (a crash in code or in the scripted
policy is not retried: it is its own failure). The step budget counts model calls; the graph's own
``RemainingSteps`` ends the role the same way before LangGraph's recursion limit would raise. Whatever
happens, the graph ends with a result or a named failure.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import Command, RetryPolicy
from pydantic import BaseModel, create_model

from graphs.binding import Binding, WiringError, binding_of, check_tools, run_bound_tool
from graphs.state import AgentState
from graphs.text_calls import with_text_call
from graphs.usage import usage_row

log = logging.getLogger(__name__)

#: Texts the loop sends the model; constants so tests and prompts can refer to them.
NUDGE = "You answered without calling a tool. Continue with a tool call; finish by calling {submit}."
STEP_LIMIT = "step limit of {n} model calls reached before {submit} was called"
PROVIDER = "the model provider failed {n} times: {error}"
HARNESS = "the model raised an error in code, not at the provider (not retried): {error}"
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


class ProviderError(Exception):
    """A model call failed at the provider; the agent node's ``RetryPolicy`` runs it again."""


class PolicyError(RuntimeError):
    """The scripted policy itself crashed (a bug in its rules): a failure of the player, never retried."""


#: Exceptions that mean code is wrong (ours or an SDK's), not that the provider had a bad moment: retrying
#: the same prompt fails the same way, so they end the role at once as a ``harness_error``.
HARNESS_EXCEPTIONS: tuple[type[Exception], ...] = (AttributeError, TypeError, NameError, NotImplementedError,
                                                   AssertionError, ImportError, WiringError)


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


def build_role_agent(model: BaseChatModel | None, tools: list[BaseTool], *, role: str, system_prompt: str,
                     output: type[BaseModel], max_steps: int = 30, site_id: str | None = None,
                     checkpointer: Any = None) -> CompiledStateGraph:
    """Compile the loop for one role, once; each invocation may bind it to its run (:mod:`graphs.binding`).

    Args:
        model: any chat model that can ``bind_tools``; None when every run binds its own model.
        tools: the role's tools: real ones, or the declared set that each run's binding replaces.
        role: "S1".."S4", "C1".."C3" (for usage rows and logs).
        system_prompt: the role's prompt (fine-grained or goal-oriented).
        output: the pydantic message the role must submit.
        max_steps: model calls allowed before the role fails with ``step_limit``.
        site_id: the client's id for client roles (usage rows), unless the binding names one.

    Raises:
        ValueError: the model cannot bind tools, or two tools share a name (wiring errors surface here,
            when the graph is built, not in the middle of a run).
    """
    if model is not None and not hasattr(model, "bind_tools"):
        raise ValueError(f"the {role} model {type(model).__name__} cannot bind tools; use a tool-calling chat model")
    submit = make_submit_tool(output)
    declared = [*tools, submit]
    names = [t.name for t in declared]
    if len(set(names)) != len(names):
        raise ValueError(f"{role}: duplicate tool names {names}")
    for t in declared:  # a schema that cannot be rendered would otherwise fail at the first model call
        t.tool_call_schema.model_json_schema()
    system = SystemMessage(system_prompt)

    def call_model(state: AgentState, config: RunnableConfig, runtime: Runtime) -> dict:
        steps = state.get("steps", 0) + 1
        if steps > max_steps or state.get("remaining_steps", 3) < 3:  # 3: model, tools, and the closing turn
            return {"failure": "step_limit", "reason": STEP_LIMIT.format(n=min(max_steps, steps - 1),
                                                                          submit=submit.name)}
        looping = repeated_call(state["messages"], MAX_REPEATS)
        if looping:
            text = REPEATED if len(looping) == 1 else CYCLED
            return {"failure": "repeated_call", "reason": text.format(call=" then ".join(looping), n=MAX_REPEATS)}
        binding = binding_of(config) or Binding(model)  # type: ignore[arg-type]
        if binding.model is None:
            raise WiringError(f"{role}: no model; pass one to build_role_agent or bind one in the run's config")
        check_tools(role, names[:-1], binding)
        site = binding.site_id or site_id
        all_tools = [*(binding.tools or tools), submit]
        bound = binding.model.bind_tools(all_tools)
        prompt = [system, *state["messages"]]
        start = time.perf_counter()
        try:
            reply = bound.invoke(prompt)
        except GraphBubbleUp:
            raise
        except Exception as exc:  # classified: told to the model, retried, or a named failure
            failure = model_failure(exc, runtime.execution_info.node_attempt if runtime.execution_info else RETRIES)
            where = f"{role}@{site}" if site else role
            if failure == "unparsable":
                return _nudged(state, steps, UNPARSABLE.format(error=str(exc)[:200], submit=submit.name))
            if failure == "retry":
                log.warning("%s: model call failed (attempt %d of %d): %s", where,
                            runtime.execution_info.node_attempt, RETRIES, exc)
                raise ProviderError(str(exc)) from exc  # the node's RetryPolicy waits and runs it again
            text = PROVIDER.format(n=RETRIES, error=_brief(exc)) if failure == "provider_error" else \
                HARNESS.format(error=_brief(exc))
            if failure != "provider_error":
                log.error("%s: the model raised, not retried: %s", where, _brief(exc))
            return {"steps": steps, "failure": failure, "reason": text}
        tools_text = "\n".join(  # the tool schemas a provider would also bill as input
            t.name + (t.description or "") + json.dumps(t.tool_call_schema.model_json_schema()) for t in all_tools)
        row = usage_row(role, site, prompt, reply, time.perf_counter() - start, tools_text)
        recovered = with_text_call(reply, names)
        if recovered is not None:  # a call written as text: taken, and counted as a format slip
            reply, row = recovered, {**row, "tool_calls": 1, "format_slips": 1}
        update: dict[str, Any] = {"messages": [reply], "steps": steps, "usage": [row]}
        if not reply.tool_calls:
            update.update(_nudged(state, steps, NUDGE.format(submit=submit.name), said=_text(reply.content)))
            update["messages"] = [reply, *update.get("messages", [])]
        return update

    def _nudged(state: AgentState, steps: int, text: str, said: str = "") -> dict[str, Any]:
        """Tell the model it made no usable call; after ``MAX_NUDGES`` times, a ``format_error`` whose
        reason quotes the model's last words (a model that cannot go on usually says why)."""
        nudges = state.get("nudges", 0) + 1
        if nudges > MAX_NUDGES:
            last = f"; it last said: {said.strip()[:400]!r}" if said.strip() else ""
            return {"steps": steps, "failure": "format_error",
                    "reason": f"made no usable tool call {nudges} times (prose or unparsable calls) instead of "
                              f"calling {submit.name}{last}"}
        return {"steps": steps, "nudges": nudges, "messages": [HumanMessage(text)]}

    def route_model(state: AgentState) -> Literal["tools", "agent", "__end__"]:
        if state.get("failure"):
            return END
        last = state["messages"][-1]
        return "tools" if isinstance(last, AIMessage) and last.tool_calls else "agent"

    def route_tools(state: AgentState) -> Literal["agent", "__end__"]:
        return END if state.get("result") is not None else "agent"

    graph = StateGraph(AgentState)
    graph.add_node("agent", call_model, retry_policy=RetryPolicy(
        initial_interval=BACKOFF_S, backoff_factor=2.0, max_attempts=RETRIES, jitter=False, retry_on=ProviderError))
    graph.add_node("tools", ToolNode(declared, handle_tool_errors=True, wrap_tool_call=run_bound_tool))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route_model)
    graph.add_conditional_edges("tools", route_tools)
    return graph.compile(checkpointer=checkpointer, name=f"{role}_agent")


def model_failure(exc: Exception, attempt: int) -> str:
    """What a model call's exception means: ``unparsable`` (the model's own malformed call, told to it),
    ``policy_error`` (the scripted policy crashed), ``harness_error`` (a bug in code, not the provider),
    ``retry`` (a provider error with attempts left) or ``provider_error`` (the last attempt failed).

    Only the provider's failures are retried: a crash in code fails the same way every time.
    """
    if any(m in str(exc).lower() for m in UNPARSABLE_MARKERS):
        return "unparsable"
    if isinstance(exc, PolicyError):
        return "policy_error"
    if isinstance(exc, HARNESS_EXCEPTIONS):
        return "harness_error"
    return "retry" if attempt < RETRIES else "provider_error"


def _text(content: Any) -> str:
    """A reply's text, whether the provider sent a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content or [])


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
