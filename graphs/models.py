"""The model factory: one spec string -> a chat model that can bind tools.

``scripted`` (the offline default, a rule-based policy, not an LLM); ``provider:model`` through
LangChain's ``init_chat_model`` (openai, anthropic, google_genai, deepseek, groq, together, ...);
``openai-compatible:<model>@<base_url>`` or ``base_url=`` for vLLM, Ollama or llama.cpp servers;
``local`` / ``local:<name>`` for the embedded llama.cpp model (:mod:`graphs.local_llm`).
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel

#: The environment variable(s) holding each ``provider:`` prefix's API key (any one is enough), as the
#: LangChain integration reads them. Providers not listed (ollama, bedrock, vertex AI) need no key
#: or take their credentials from elsewhere.
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",), "azure_openai": ("AZURE_OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",), "deepseek": ("DEEPSEEK_API_KEY",),
    "google_genai": ("GOOGLE_API_KEY", "GEMINI_API_KEY"), "groq": ("GROQ_API_KEY",),
    "together": ("TOGETHER_API_KEY",), "mistralai": ("MISTRAL_API_KEY",), "fireworks": ("FIREWORKS_API_KEY",),
    "xai": ("XAI_API_KEY",), "cohere": ("COHERE_API_KEY",), "perplexity": ("PPLX_API_KEY",),
    "deepinfra": ("DEEPINFRA_API_KEY",), "huggingface": ("HUGGINGFACEHUB_API_TOKEN",),
}


class ProviderUnavailable(ValueError):
    """The model provider cannot be used (missing key or package); the message says how to fix it."""


def missing_key(spec: str) -> str | None:
    """The environment variable ``spec`` needs and lacks (the first one, if several work), else None."""
    provider = spec.strip().partition(":")[0].lower()
    names = PROVIDER_KEYS.get(provider, ())
    return names[0] if names and not any(os.environ.get(n, "").strip() for n in names) else None


def make(spec: str, *, base_url: str | None = None, temperature: float = 0.0, **kwargs: Any) -> BaseChatModel:
    """Build the chat model named by ``spec`` (ValueError says which specs exist).

    Raises:
        ProviderUnavailable: the provider's API key variable is unset or its package is missing, so
            a run fails before any graph starts rather than on its first model call.
    """
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
    var = None if "api_key" in kwargs else missing_key(spec)
    if var:
        raise ProviderUnavailable(f"model {spec!r} needs an API key: set the environment variable {var} "
                                  f"(export {var}=...), or use --model scripted to run offline")
    try:
        return init_chat_model(name, model_provider=provider, temperature=temperature, **kwargs)
    except ImportError as exc:
        raise ProviderUnavailable(f"model {spec!r}: the provider's package is not installed ({exc}); install "
                                  "it, e.g. pip install langchain-" + provider.replace("_", "-")) from None


def describe(spec: str) -> str:
    """How a model is labelled in reports: the scripted policy is never called an LLM."""
    return "scripted policy (deterministic rules, not an LLM)" if spec == "scripted" else f"LLM {spec}"
