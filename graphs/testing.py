"""A tool-calling fake chat model for tests: it replays scripted replies, one per call.

langchain-core's fake chat models refuse ``bind_tools`` and lose tool calls when streamed; this one
binds tools by returning itself and never streams. A reply may be an ``AIMessage``, a
``(tool, args)`` pair, plain text, or an exception to raise (a provider error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class FakeToolCallingModel(BaseChatModel):
    """Replays ``replies`` in order; the last one repeats once they run out."""

    replies: list[Any] = Field(default_factory=list)
    calls: int = 0
    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "fake-tool-calling"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeToolCallingModel:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        reply = self.replies[min(self.calls, len(self.replies) - 1)]
        self.calls += 1
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, tuple):
            name, args = reply
            reply = AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{self.calls}",
                                               "type": "tool_call"}])
        elif isinstance(reply, str):
            reply = AIMessage(reply)
        return ChatResult(generations=[ChatGeneration(message=reply)])
