"""The model factory: one spec string -> a chat model that can bind tools.

``scripted`` (the offline default, a rule-based policy, not an LLM); ``provider:model`` through
LangChain's ``init_chat_model`` (openai, anthropic, google_genai, deepseek, groq, together, ...);
``openai-compatible:<model>@<base_url>`` or ``base_url=`` for vLLM, Ollama or llama.cpp servers;
``local`` / ``local:<name>`` for the embedded llama.cpp model (:mod:`graphs.local_llm`).
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel


def make(spec: str, *, base_url: str | None = None, temperature: float = 0.0, **kwargs: Any) -> BaseChatModel:
    """Build the chat model named by ``spec`` (ValueError says which specs exist)."""
    spec = spec.strip()
    if spec == "scripted":
        from graphs.scripted.model import ScriptedChatModel

        return ScriptedChatModel()
    if (spec == "local" or spec.startswith("local:")) and not base_url:
        from graphs.local_llm import chat_model

        return chat_model(spec, temperature=temperature, **kwargs)
    if spec.startswith("openai-compatible:") or base_url:
        from langchain_openai import ChatOpenAI

        name, _, url = spec.removeprefix("openai-compatible:").partition("@")
        url = base_url or url
        if not url:
            raise ValueError("an OpenAI-compatible model needs a base URL: 'openai-compatible:MODEL@http://host:port/v1'")
        return ChatOpenAI(model=name, base_url=url, api_key=kwargs.pop("api_key", "not-needed"),
                          temperature=temperature, **kwargs)
    if ":" not in spec:
        raise ValueError(f"unknown model spec {spec!r}: use 'scripted', 'local[:NAME]', "
                         "'provider:model' (e.g. 'openai:gpt-4.1') or 'openai-compatible:MODEL@BASE_URL'")
    from langchain.chat_models import init_chat_model

    provider, _, name = spec.partition(":")
    return init_chat_model(name, model_provider=provider, temperature=temperature, **kwargs)


def describe(spec: str) -> str:
    """How a model is labelled in reports: the scripted policy is never called an LLM."""
    return "scripted policy (deterministic rules, not an LLM)" if spec == "scripted" else f"LLM {spec}"
