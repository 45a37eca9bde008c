"""What one invocation of a compiled role agent works with: the run's model and its site's tools.

A role's agent is compiled once, when the server graph is built, with the role's *declared* tools:
the names, manuals and argument schemas the model is offered, built from the same factories as the
real ones but bound to nothing. Each run then binds it, through its config, to the run's model and to
tools bound to one site's workspace (or to the server's training folder). The declared set and the
bound set must carry the same names; the ``ToolNode`` runs the bound tool of the name the model called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import ToolCallRequest

#: The key of ``config["configurable"]`` that holds a :class:`Binding`.
BINDING = "fedagentbench_binding"
UNBOUND = ("the tool {name} is declared for this role but the run bound no tool of that name; this is a "
           "harness error, not yours: continue with the other tools or submit what you have")


class WiringError(ValueError):
    """A role agent was run with a tool set that is not the one it was compiled with."""


@dataclass(frozen=True)
class Binding:
    """The run's side of one role invocation (never seen by the model, never checkpointed).

    Attributes:
        model: the chat model playing the role in this run.
        tools: the role's tools bound to this run's workspace; empty to run the declared tools as they are.
        site_id: the client's id for client roles (usage rows and logs).
    """

    model: BaseChatModel
    tools: Sequence[BaseTool] = ()
    site_id: str | None = None
    by_name: dict[str, BaseTool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {t.name: t for t in self.tools})


def with_binding(config: RunnableConfig, binding: Binding) -> RunnableConfig:
    """``config`` with ``binding`` added to its configurable values."""
    return {**config, "configurable": {**(config.get("configurable") or {}), BINDING: binding}}


def binding_of(config: RunnableConfig | None) -> Binding | None:
    return ((config or {}).get("configurable") or {}).get(BINDING)


def check_tools(role: str, declared: Sequence[str], binding: Binding) -> None:
    """Raise :class:`WiringError` unless the bound tools are exactly the declared ones (by name)."""
    if not binding.tools:
        return
    got, want = sorted(binding.by_name), sorted(declared)
    if got != want or len(binding.tools) != len(got):
        raise WiringError(f"{role}: the run bound tools {got}, but the agent was compiled with {want}; build "
                          "both from the same tool set (graphs.toolsets)")


def run_bound_tool(request: ToolCallRequest, execute: Any) -> ToolMessage | Any:
    """``ToolNode`` interceptor: run the tool bound in this run's config in place of the declared one.

    Without a binding (an agent compiled with real tools, as in tests) the declared tool runs. A
    declared tool the run did not bind is answered with an error message, never run unbound.
    """
    binding = binding_of(getattr(request.runtime, "config", None))
    if binding is None or not binding.tools or request.tool is None:
        return execute(request)
    name = request.tool_call["name"]
    bound = binding.by_name.get(name)
    if bound is None:
        if name.startswith("submit_"):  # the submit tool belongs to the agent, not to the run
            return execute(request)
        return ToolMessage(UNBOUND.format(name=name), name=name, tool_call_id=request.tool_call["id"],
                           status="error")
    return execute(request.override(tool=bound))
