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

A live training job's progress reports are not reproducible: how many rounds a ``training_status``
call sees as done, and how many calls it takes until the job ends, depend on the machine's load. So
every record also carries a *progress key*: the request with its progress reports of a still running
job left out (see :func:`settled`) and its tool-call ids numbered in order. A request whose exact key
was never recorded is served the response recorded under its progress key when the recording
answered every request with that progress key alike (a model that polls until the job ends); when it
answered them differently (it stopped the job after seeing round 3, say) the replay cannot know
which answer the live run's progress calls for, and it misses, saying so.
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


#: Tools whose result reports a running job's progress, and when a result is only progress.
PROGRESS_TOOLS: dict[str, Any] = {
    "training_status": lambda result: isinstance(result, dict) and result.get("state") == "running",
}


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


def _is_progress(m: BaseMessage) -> bool:
    """A tool result that only reports a running job's progress."""
    test = PROGRESS_TOOLS.get(getattr(m, "name", None) or "") if m.type == "tool" else None
    if test is None:
        return False
    try:
        return bool(test(json.loads(m.content) if isinstance(m.content, str) else m.content))
    except (TypeError, ValueError):
        return False


def settled(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The canonical messages without the progress reports of a running job and the calls that asked
    for them, tool-call ids numbered in order of appearance (how many polls came before changes them)."""
    dropped = {m.tool_call_id for m in messages if _is_progress(m)}
    out: list[dict[str, Any]] = []
    for m in messages:
        c = canonical_message(m)
        if m.type == "tool" and c.get("tool_call_id") in dropped:
            continue
        if "tool_calls" in c:
            c["tool_calls"] = [t for t in c["tool_calls"] if t["id"] not in dropped]
            if not c["tool_calls"]:
                del c["tool_calls"]
                if not c["content"]:
                    continue
        out.append(c)
    order: dict[str, str] = {}
    for c in out:
        for t in c.get("tool_calls", ()):
            t["id"] = order.setdefault(t["id"], f"call_{len(order)}")
        if "tool_call_id" in c:
            c["tool_call_id"] = order.setdefault(c["tool_call_id"], f"call_{len(order)}")
    return out


def _hash(model: str, settings: dict[str, Any], tools: list[dict[str, Any]], bind: dict[str, Any],
          canonical: list[dict[str, Any]]) -> str:
    text = json.dumps(canonical, sort_keys=True, default=str)
    for pattern, repl in VOLATILE:
        text = pattern.sub(repl, text)
    head = json.dumps({"model": model, "settings": settings, "tools": tools, "bind": bind}, sort_keys=True,
                      default=str)
    return hashlib.sha256(f"{head}\n{text}".encode()).hexdigest()[:32]


def request_key(model: str, settings: dict[str, Any], tools: list[dict[str, Any]], bind: dict[str, Any],
                messages: Sequence[BaseMessage]) -> str:
    """The hash under which the response to this request is stored."""
    return _hash(model, settings, tools, bind, [canonical_message(m) for m in messages])


def progress_key(model: str, settings: dict[str, Any], tools: list[dict[str, Any]], bind: dict[str, Any],
                 messages: Sequence[BaseMessage]) -> str:
    """The hash of the request with a running job's progress reports left out (:func:`settled`)."""
    return _hash(model, settings, tools, bind, settled(messages))


def _answer(response: dict[str, Any]) -> str:
    """A recorded response with its tool-call ids and live ids masked: what two answers share when
    they make the same calls."""
    data = dict(response.get("data", {}))
    for field_name in ("id", "response_metadata", "usage_metadata"):
        data.pop(field_name, None)
    calls = [{"name": c.get("name"), "args": c.get("args")} for c in data.pop("tool_calls", None) or []]
    data.pop("additional_kwargs", None)
    text = json.dumps({"data": data, "calls": calls}, sort_keys=True, default=str)
    for pattern in LIVE_IDS:
        text = pattern.sub("<id>", text)
    return text


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

    def progress_key(self, messages: Sequence[BaseMessage]) -> str:
        return progress_key(self.name_in_key, self.settings, self.tools_in_key, self.bind_in_key, messages)

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
        record = {"key": key, "progress_key": self.progress_key(messages), "model": self.name_in_key,
                  "request": _describe(messages), "ids": live_ids(messages), "response": message_to_dict(reply)}
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, default=str)
        os.replace(tmp, self.folder / f"{key}.json")  # atomic: parallel trials may share the folder
        return ChatResult(generations=[ChatGeneration(message=reply)])


class ReplayChatModel(_KeyedModel):
    """Serves recorded responses with no network; a request that was never recorded raises."""

    misses: list[str] = Field(default_factory=list, description="every miss so far (shared by bound copies)")
    by_progress_key: dict[str, list[dict[str, Any]]] = Field(
        default_factory=dict, description="the folder's records by progress key, read at the first miss of an "
                                          "exact key (shared by bound copies)")

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
        if path.exists():
            record, renumber = json.loads(path.read_text(encoding="utf-8")), False
        else:
            record, renumber = self._by_progress(messages, key), True
        response = record["response"]
        renamed = {old: new for old, new in zip(record.get("ids", []), live_ids(messages)) if old != new}
        if renumber:  # the same recorded answer may serve several polls: give its calls ids of their own
            renamed |= {c["id"]: f"{c['id']}_{len(messages)}" for c in response.get("data", {}).get("tool_calls") or []
                        if c.get("id")}
        if renamed:  # the recorded response may quote ids of the recorded run: name the live ones
            text = json.dumps(response)
            for old, new in renamed.items():
                text = text.replace(old, new)
            response = json.loads(text)
        reply = messages_from_dict([response])[0]
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _by_progress(self, messages: list[BaseMessage], key: str) -> dict[str, Any]:
        """The record whose request differs from this one only in a running job's progress reports."""
        if not self.by_progress_key:
            for record in self._records():
                self.by_progress_key.setdefault(record.get("progress_key") or "", []).append(record)
        found = self.by_progress_key.get(self.progress_key(messages), [])
        answers = {_answer(r["response"]) for r in found}
        if len(answers) == 1:
            return found[0]
        why = ("no recorded response" if not found else
               f"the recording answered {len(answers)} ways at this point depending on the training "
               "progress it saw, and this run's progress differs, so no single answer applies: record this "
               "run afresh")
        msg = (f"replay miss for {self.name_in_key}: {why} {key} in {self.folder} ({_describe(messages)}). "
               "Record the run with --record first, and replay it with the same suite, models, prompts, "
               "tools and settings.")
        self.misses.append(msg)
        raise ReplayMiss(msg)

    def _records(self) -> list[dict[str, Any]]:
        """Every record in the folder."""
        out = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue
        return out
