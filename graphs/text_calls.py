"""Tool calls a model wrote as text instead of through the provider's tool-call channel.

Small open models behind OpenAI-compatible servers often answer ``{"name": ..., "arguments": ...}``
as plain text (bare, or in a fenced json block) when the server's parser expects another syntax:
measured with Qwen2.5-Coder-0.5B under llama-server, most unparsed replies were exactly that. The
role loop takes such a reply as the call it clearly is, so one formatting habit does not cost the
whole role, but records it as a format slip so the scorecard still shows that the model missed the
channel. An object counts when it names a bound tool, or has both a name and arguments (a call to
a tool that does not exist, answered as such); anything else stays prose.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Iterator
from typing import Any

from langchain_core.messages import AIMessage

#: Keys small models use for a call's arguments, in the order they are tried.
ARGUMENT_KEYS = ("arguments", "args", "parameters")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _objects(text: str) -> Iterator[Any]:
    """JSON values found in ``text``, lazily: fenced blocks first, then every decodable ``{`` onwards."""
    for block in _FENCE.findall(text):
        try:
            yield json.loads(block)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            yield decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue


def _as_call(value: Any, tool_names: Collection[str]) -> dict[str, Any] | None:
    """A call from a JSON object: one naming a bound tool, or any ``{"name", "arguments"}`` object.

    An object with a name and arguments is call-shaped even when the name is wrong (the 0.5B model
    wrote ``{"name": "fedavg", ...}`` for S3's submit); taken as a call, the tool node answers it with
    the valid tool names, which a "you answered in prose" nudge never told the model.
    """
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    has_args = any(k in value for k in ARGUMENT_KEYS)
    if value["name"] not in tool_names and not has_args:
        return None
    args = next((value[k] for k in ARGUMENT_KEYS if k in value), {})
    if isinstance(args, str):  # some models JSON-encode the arguments twice
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return {"name": value["name"], "args": args, "id": f"text_{uuid.uuid4().hex[:12]}", "type": "tool_call"}


def parse_text_call(content: Any, tool_names: Collection[str]) -> dict[str, Any] | None:
    """The first tool call written as JSON text in ``content`` (see ``_as_call``), else None."""
    if not isinstance(content, str) or "{" not in content:
        return None
    for value in _objects(content):
        call = _as_call(value, tool_names)
        if call is not None:
            return call
    return None


def with_text_call(reply: AIMessage, tool_names: Collection[str]) -> AIMessage | None:
    """``reply`` with its text call moved into ``tool_calls``; None when it holds no such call."""
    if reply.tool_calls:
        return None
    call = parse_text_call(reply.content, tool_names)
    if call is None:
        return None
    return reply.model_copy(update={"tool_calls": [call], "invalid_tool_calls": []})
