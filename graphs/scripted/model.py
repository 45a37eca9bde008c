"""``scripted``: a deterministic, rule-based policy that plays every role through the real tools.

It is a LangChain chat model (so it runs through exactly the graph an LLM runs through) but it is not
an LLM: each role's policy reads the transcript (its input and the tool results so far) and returns
the next tool call. It is the offline default, the proof that every task is solvable, and the upper
bound of score tables; it is always labelled as a scripted policy.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from pydantic import Field

LABEL = "scripted policy (deterministic rules, not an LLM)"

#: role output schema name -> policy(transcript) -> (tool name, args)
Policy = Callable[["Transcript"], tuple[str, dict[str, Any]]]
POLICIES: dict[str, Policy] = {}


class Unanswerable(ValueError):
    """A policy cannot go on (the request is unclear, a tool refused what the role needs): the policy
    answers with this message instead of a tool call, as a careful human would, and the role ends
    without a submission. The message says what it understood and what would let it go on."""


def policy(schema_name: str) -> Callable[[Policy], Policy]:
    """Register the policy for the role whose submit tool is ``submit_<schema_name>``."""

    def deco(fn: Policy) -> Policy:
        POLICIES[schema_name] = fn
        return fn

    return deco


class Transcript:
    """What a policy may read: the role's input and every tool result so far, parsed."""

    def __init__(self, messages: Sequence[BaseMessage], tool_names: Sequence[str]):
        self.messages = list(messages)
        self.tool_names = list(tool_names)
        humans = [m for m in messages if isinstance(m, HumanMessage)]
        self.input: dict[str, Any] = _json(humans[0].content) if humans else {}
        self.results: list[tuple[str, Any]] = []  # (tool name, parsed result), in order
        for m in messages:
            if isinstance(m, ToolMessage):
                self.results.append((m.name or "", _json(m.content)))

    def last(self, tool: str) -> Any:
        """The latest result of ``tool`` (None if not called yet)."""
        return next((r for name, r in reversed(self.results) if name == tool), None)

    def all(self, tool: str) -> list[Any]:
        return [r for name, r in self.results if name == tool]

    def called(self, tool: str) -> int:
        return sum(1 for name, _ in self.results if name == tool)


def _json(content: Any) -> Any:
    if not isinstance(content, str):
        return content
    try:
        return json.loads(content)
    except ValueError:
        return content


class ScriptedChatModel(BaseChatModel):
    """The chat-model face of the scripted policies."""

    tool_names: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": "scripted", "label": LABEL}

    def bind_tools(self, tools: Sequence[BaseTool | dict | type | Callable], **kwargs: Any) -> ScriptedChatModel:
        names = [t.name if isinstance(t, BaseTool) else getattr(t, "__name__", str(t)) for t in tools]
        return self.model_copy(update={"tool_names": names})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        from graphs.scripted import roles  # noqa: F401  (registers the policies)

        submit = next((n for n in self.tool_names if n.startswith("submit_")), None)
        if submit is None or submit.removeprefix("submit_") not in POLICIES:
            raise ValueError(f"the scripted policy has no rules for a role submitting {submit!r}")
        transcript = Transcript(messages, self.tool_names)
        try:
            name, args = POLICIES[submit.removeprefix("submit_")](transcript)
        except Unanswerable as exc:
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=str(exc)))])
        except Exception as exc:
            from graphs.agent import PolicyError

            raise PolicyError(f"the scripted policy for {submit} crashed: {type(exc).__name__}: {exc}") from exc
        if name not in self.tool_names:
            raise ValueError(f"scripted policy chose {name!r}, which this role was not given: {self.tool_names}")
        call_id = f"call_{uuid.uuid5(uuid.NAMESPACE_OID, f'{len(messages)}:{name}:{json.dumps(args, sort_keys=True)}').hex[:16]}"
        msg = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=msg)])
