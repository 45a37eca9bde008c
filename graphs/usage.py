"""Token and time accounting for every model call, per role.

Providers report tokens in ``usage_metadata``; when one does not (the scripted policy, some local
servers), tokens are estimated from text length and the row says so, so a table never mixes
measured and guessed numbers silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage

from graphs.state import UsageRow

#: Characters per token for the estimate (the usual figure for English and JSON with BPE tokenizers).
CHARS_PER_TOKEN = 4.0


def _text_len(messages: Sequence[BaseMessage]) -> int:
    n = 0
    for m in messages:
        n += len(m.content) if isinstance(m.content, str) else len(str(m.content))
        for call in getattr(m, "tool_calls", None) or []:
            n += len(str(call.get("args", ""))) + len(call.get("name", ""))
    return n


def usage_row(role: str, site_id: str | None, prompt: Sequence[BaseMessage], reply: AIMessage,
              seconds: float, tools_chars: int = 0) -> UsageRow:
    """One row for one model call: measured tokens when the provider gave them, else an estimate."""
    meta = reply.usage_metadata or {}
    measured = bool(meta.get("input_tokens") or meta.get("output_tokens"))
    if measured:
        inp, out = int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0))
    else:
        inp = int((_text_len(prompt) + tools_chars) / CHARS_PER_TOKEN)
        out = int(_text_len([reply]) / CHARS_PER_TOKEN)
    return UsageRow(role=role, site_id=site_id, input_tokens=inp, output_tokens=out, seconds=round(seconds, 4),
                    tool_calls=len(reply.tool_calls or []), estimated=not measured)


def totals(rows: Sequence[UsageRow], key: str = "role") -> dict[str, dict[str, float]]:
    """Sum rows by ``key`` ("role" or "site_id")."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        t = out.setdefault(str(r[key]), {"calls": 0, "input_tokens": 0, "output_tokens": 0, "seconds": 0.0,
                                         "tool_calls": 0, "estimated": 0})
        t["calls"] += 1
        for k in ("input_tokens", "output_tokens", "seconds", "tool_calls"):
            t[k] += r[k]
        t["estimated"] += int(r["estimated"])
    return out
