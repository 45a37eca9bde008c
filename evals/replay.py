"""Record and replay model responses, so a benchmark run can be re-run and re-scored with no network.

:class:`RecordingChatModel` wraps any chat model and writes every response to ``<folder>/<key>.json``;
:class:`ReplayChatModel` serves those files back, bit for bit, and raises :class:`ReplayMiss` on a
prompt it has never seen. The key hashes what determines a response: the model's name, its settings,
the bound tools' schemas and bind options, and the messages.

Tool results can carry values that change from run to run without changing what they mean: wall
times (``"seconds": 1.93``) and training job ids (``job_001_9f3a2c``). Those are masked in the key
(see :data:`VOLATILE`); everything else must match exactly. A recorded response may quote an id
(``training_status(job_id=...)``); the recording keeps the ids its request held, and the replay maps
them to the ids of the live run (:data:`LIVE_IDS`), so the replayed call names the live job. Apart
from those ids a replayed response is the recorded one, bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

#: (pattern, replacement) applied to the key's messages: values that vary between identical runs.
VOLATILE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'(\\?"\w*seconds\w*\\?"\s*:\s*)-?[0-9.eE+-]+'), r"\1<t>"),  # quotes may be escaped
    (re.compile(r"\bjob_\d+_[0-9a-f]{6}\b"), "job_<id>"),
)


#: Identifiers the live tools create afresh in every run; replayed responses are translated to them.
LIVE_IDS: tuple[re.Pattern[str], ...] = (re.compile(r"\bjob_\d+_[0-9a-f]{6}\b"),)


def live_ids(messages: Sequence[BaseMessage]) -> list[str]:
    """Every live identifier in the messages, in order of first appearance."""
    text = json.dumps([canonical_message(m) for m in messages], sort_keys=True, default=str)
    return list(dict.fromkeys(m.group(0) for p in LIVE_IDS for m in p.finditer(text)))


class ReplayMiss(LookupError):
    """A replayed model was asked something the recording does not hold."""


def canonical_message(m: BaseMessage) -> dict[str, Any]:
    """What of a message determines the next response (ids and provider metadata do not)."""
    out: dict[str, Any] = {"type": m.type, "content": m.content}
    if isinstance(m, AIMessage) and m.tool_calls:
        out["tool_calls"] = [{"name": c["name"], "args": c["args"], "id": c.get("id")} for c in m.tool_calls]
    for attr in ("tool_call_id", "name"):
        if getattr(m, attr, None):
            out[attr] = getattr(m, attr)
    return out


def tool_schemas(tools: Sequence[Any]) -> list[dict[str, Any]]:
    return [convert_to_openai_tool(t) for t in tools]


def request_key(model: str, settings: dict[str, Any], tools: list[dict[str, Any]], bind: dict[str, Any],
                messages: Sequence[BaseMessage]) -> str:
    """The hash under which the response to this request is stored."""
    text = json.dumps([canonical_message(m) for m in messages], sort_keys=True, default=str)
    for pattern, repl in VOLATILE:
        text = pattern.sub(repl, text)
    head = json.dumps({"model": model, "settings": settings, "tools": tools, "bind": bind}, sort_keys=True,
                      default=str)
    return hashlib.sha256(f"{head}\n{text}".encode()).hexdigest()[:32]


def _describe(messages: Sequence[BaseMessage]) -> str:
    last = messages[-1] if messages else None
    if last is None:
        return "no messages"
    what = f"{last.type}" + (f" from {last.name}" if getattr(last, "name", None) else "")
    return f"{len(messages)} messages, the last a {what}: {str(last.content)[:120]!r}"


class _KeyedModel(BaseChatModel):
    """What recording and replay share: the key's ingredients and the bound tools."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name_in_key: str = Field(description="the model's registry name")
    settings: dict[str, Any] = Field(default_factory=dict)
    folder: Path
    tools_in_key: list[dict[str, Any]] = Field(default_factory=list)
    bind_in_key: dict[str, Any] = Field(default_factory=dict)

    def key(self, messages: Sequence[BaseMessage]) -> str:
        return request_key(self.name_in_key, self.settings, self.tools_in_key, self.bind_in_key, messages)

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.name_in_key, **self.settings}


class RecordingChatModel(_KeyedModel):
    """Calls ``inner`` and stores every response under its request key (one JSON file per key)."""

    inner: BaseChatModel
    bound: Any = None

    @property
    def _llm_type(self) -> str:
        return f"recording:{self.inner._llm_type}"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> RecordingChatModel:
        return self.model_copy(update={"bound": self.inner.bind_tools(tools, **kwargs),
                                       "tools_in_key": tool_schemas(tools), "bind_in_key": kwargs})

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        reply = (self.bound or self.inner).invoke(messages, stop=stop, **kwargs)
        key = self.key(messages)
        record = {"key": key, "model": self.name_in_key, "request": _describe(messages),
                  "ids": live_ids(messages), "response": message_to_dict(reply)}
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, default=str)
        os.replace(tmp, self.folder / f"{key}.json")  # atomic: parallel trials may share the folder
        return ChatResult(generations=[ChatGeneration(message=reply)])


class ReplayChatModel(_KeyedModel):
    """Serves recorded responses with no network; a request that was never recorded raises."""

    misses: list[str] = Field(default_factory=list, description="every miss so far (shared by bound copies)")

    @property
    def _llm_type(self) -> str:
        return "replay"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ReplayChatModel:
        # the copy shares ``misses`` (a shallow copy), so the runner sees misses of every role
        return self.model_copy(update={"tools_in_key": tool_schemas(tools), "bind_in_key": kwargs})

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        key = self.key(messages)
        path = self.folder / f"{key}.json"
        if not path.exists():
            msg = (f"replay miss for {self.name_in_key}: no recorded response {key} in {self.folder} "
                   f"({_describe(messages)}). Record the run with --record first, and replay it with the "
                   "same suite, models, prompts, tools and settings.")
            self.misses.append(msg)
            raise ReplayMiss(msg)
        record = json.loads(path.read_text(encoding="utf-8"))
        response = record["response"]
        renamed = {old: new for old, new in zip(record.get("ids", []), live_ids(messages)) if old != new}
        if renamed:  # the recorded response may quote ids of the recorded run: name the live ones
            text = json.dumps(response)
            for old, new in renamed.items():
                text = text.replace(old, new)
            response = json.loads(text)
        reply = messages_from_dict([response])[0]
        return ChatResult(generations=[ChatGeneration(message=reply)])
