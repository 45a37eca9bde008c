"""The model registry: the 24 LLMs the research compared, the scripted policy, local models, endpoints.

Every hosted LLM is reached through an OpenAI-compatible API (OpenAI itself, Anthropic's and DeepSeek's
compatibility endpoints, DeepInfra for open-weight models), so one client class serves them all and
no provider package beyond ``langchain-openai`` is needed. Keys come from the usual environment
variables; a model whose key is missing is skipped with one line, never an error.

Prices are list prices in USD per 1M input / output tokens (mid-2025; open-weight models at
DeepInfra's rates). They feed the cost columns and may drift; a price of None means unknown.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel

log = logging.getLogger(__name__)

Kind = Literal["llm", "scripted", "local", "endpoint"]
SizeClass = Literal["small", "medium", "large", "frontier", "n/a"]

OPENAI = "https://api.openai.com/v1"
ANTHROPIC = "https://api.anthropic.com/v1/"
DEEPSEEK = "https://api.deepseek.com/v1"
DEEPINFRA = "https://api.deepinfra.com/v1/openai"


@dataclass(frozen=True)
class ModelEntry:
    """One model the benchmark can run.

    Attributes:
        name: the registry name used on the command line and in result tables.
        provider: who serves it (openai, anthropic, deepseek, deepinfra, local, ...).
        model_id: the provider's model id.
        open_weights: open-weight model (True) or proprietary (False); None for the scripted policy.
        size_class: small (<10B), medium (10-40B), large (>40B), frontier (undisclosed flagship).
        price_in / price_out: USD per 1M input / output tokens (None: unknown).
        key_env: environment variable holding the API key (None: no key needed).
        base_url: the OpenAI-compatible endpoint (None: built by graphs.models.make).
        kind: llm | scripted (a rule-based policy, never an LLM) | local | endpoint (from the command line).
        settings: sampling settings, part of the record/replay key.
    """

    name: str
    provider: str
    model_id: str
    open_weights: bool | None
    size_class: SizeClass
    price_in: float | None
    price_out: float | None
    key_env: str | None
    base_url: str | None = None
    kind: Kind = "llm"
    settings: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.0})

    @property
    def label(self) -> str:
        """How reports name it: the scripted policy is never called an LLM."""
        if self.kind == "scripted":
            return "scripted policy (deterministic rules, not an LLM)"
        return f"{self.name} ({self.provider}, {'open' if self.open_weights else 'proprietary'})" \
            if self.open_weights is not None else f"{self.name} ({self.provider})"

    def missing_key(self) -> str | None:
        """The environment variable this model needs and lacks, else None."""
        return self.key_env if self.key_env and not os.environ.get(self.key_env, "").strip() else None

    def cost(self, input_tokens: float, output_tokens: float) -> float | None:
        """USD for the given tokens (None when the price is unknown)."""
        if self.price_in is None or self.price_out is None:
            return None
        return (input_tokens * self.price_in + output_tokens * self.price_out) / 1e6

    def make(self) -> BaseChatModel:
        """The chat model (no network is touched until it is called)."""
        from graphs.models import ProviderUnavailable, make

        if self.kind in ("scripted", "local"):
            return make(self.model_id)
        from langchain_openai import ChatOpenAI

        key = os.environ.get(self.key_env, "").strip() if self.key_env else "not-needed"
        if not key:
            raise ProviderUnavailable(f"{self.name} needs an API key: set the environment variable {self.key_env} "
                                      f"(export {self.key_env}=...)")
        return ChatOpenAI(model=self.model_id, base_url=self.base_url or OPENAI, api_key=key, max_retries=2,
                          **self.settings)


def _llm(name: str, provider: str, model_id: str, open_weights: bool, size: SizeClass, price_in: float,
         price_out: float, reasoning: bool = False) -> ModelEntry:
    key_env, url = {"openai": ("OPENAI_API_KEY", OPENAI), "anthropic": ("ANTHROPIC_API_KEY", ANTHROPIC),
                    "deepseek": ("DEEPSEEK_API_KEY", DEEPSEEK), "deepinfra": ("DEEPINFRA_API_KEY", DEEPINFRA)}[provider]
    settings = {} if reasoning else {"temperature": 0.0}  # o-series models reject a temperature
    return ModelEntry(name, provider, model_id, open_weights, size, price_in, price_out, key_env, url,
                      settings=settings)


#: The 24 LLMs of the research's comparison (10 proprietary, 14 open-weight).
LLMS: tuple[ModelEntry, ...] = (
    _llm("gpt-4.1", "openai", "gpt-4.1", False, "frontier", 2.00, 8.00),
    _llm("gpt-4.1-mini", "openai", "gpt-4.1-mini", False, "frontier", 0.40, 1.60),
    _llm("gpt-4o", "openai", "gpt-4o", False, "frontier", 2.50, 10.00),
    _llm("gpt-4o-mini", "openai", "gpt-4o-mini", False, "frontier", 0.15, 0.60),
    _llm("gpt-4-turbo", "openai", "gpt-4-turbo", False, "frontier", 10.00, 30.00),
    _llm("gpt-4", "openai", "gpt-4", False, "frontier", 30.00, 60.00),
    _llm("gpt-3.5-turbo", "openai", "gpt-3.5-turbo", False, "frontier", 0.50, 1.50),
    _llm("o4-mini", "openai", "o4-mini", False, "frontier", 1.10, 4.40, reasoning=True),
    _llm("o3-mini", "openai", "o3-mini", False, "frontier", 1.10, 4.40, reasoning=True),
    _llm("claude-3.7-sonnet", "anthropic", "claude-3-7-sonnet-20250219", False, "frontier", 3.00, 15.00),
    _llm("deepseek-v3", "deepseek", "deepseek-chat", True, "large", 0.27, 1.10),
    _llm("qwen3-30b-a3b", "deepinfra", "Qwen/Qwen3-30B-A3B", True, "medium", 0.08, 0.29),
    _llm("qwq-32b", "deepinfra", "Qwen/QwQ-32B", True, "medium", 0.15, 0.20),
    _llm("qwen2.5-72b", "deepinfra", "Qwen/Qwen2.5-72B-Instruct", True, "large", 0.12, 0.39),
    _llm("llama-3-8b", "deepinfra", "meta-llama/Meta-Llama-3-8B-Instruct", True, "small", 0.03, 0.06),
    _llm("llama-3-70b", "deepinfra", "meta-llama/Meta-Llama-3-70B-Instruct", True, "large", 0.30, 0.40),
    _llm("llama-3.1-8b", "deepinfra", "meta-llama/Meta-Llama-3.1-8B-Instruct", True, "small", 0.03, 0.05),
    _llm("llama-3.1-70b", "deepinfra", "meta-llama/Meta-Llama-3.1-70B-Instruct", True, "large", 0.23, 0.40),
    _llm("llama-3.3-70b", "deepinfra", "meta-llama/Llama-3.3-70B-Instruct", True, "large", 0.23, 0.40),
    _llm("mistral-small-24b", "deepinfra", "mistralai/Mistral-Small-24B-Instruct-2501", True, "medium", 0.05, 0.08),
    _llm("mixtral-8x7b", "deepinfra", "mistralai/Mixtral-8x7B-Instruct-v0.1", True, "medium", 0.24, 0.24),
    _llm("gemma-3-27b", "deepinfra", "google/gemma-3-27b-it", True, "medium", 0.10, 0.20),
    _llm("gemma-2-9b", "deepinfra", "google/gemma-2-9b-it", True, "small", 0.03, 0.06),
    _llm("phi-4", "deepinfra", "microsoft/phi-4", True, "medium", 0.07, 0.14),
)

OTHERS: tuple[ModelEntry, ...] = (
    ModelEntry("scripted", "fedagentbench", "scripted", None, "n/a", 0.0, 0.0, None, kind="scripted", settings={}),
    ModelEntry("local", "local", "local", True, "small", 0.0, 0.0, None, kind="local"),
    ModelEntry("local:qwen2.5-coder-1.5b", "local", "local:qwen2.5-coder-1.5b", True, "small", 0.0, 0.0, None,
               kind="local"),
)

REGISTRY: dict[str, ModelEntry] = {m.name: m for m in (*LLMS, *OTHERS)}

_ENDPOINT = re.compile(r"^(?P<name>[\w.\-:]+)=(?P<model>[^@]+)@(?P<url>https?://\S+)$")


def parse_endpoint(text: str) -> ModelEntry:
    """``NAME=MODEL@URL`` -> an entry for any OpenAI-compatible server.

    Its key, if any, is read from ``<NAME>_API_KEY`` (upper case, non-alphanumerics as ``_``); without
    one the server is called with a dummy key, as local servers expect. Its price is unknown.
    """
    m = _ENDPOINT.match(text.strip())
    if not m:
        raise ValueError(f"bad --endpoint {text!r}: write NAME=MODEL@URL, e.g. "
                         "'myvllm=Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1'")
    env = re.sub(r"\W", "_", m["name"]).upper() + "_API_KEY"
    return ModelEntry(m["name"], "openai-compatible", m["model"], None, "n/a", None, None,
                      env if os.environ.get(env) else None, m["url"], kind="endpoint")


def resolve(names: list[str], endpoints: list[str] = (), *, need_keys: bool = True
            ) -> tuple[list[ModelEntry], list[str]]:
    """The entries to run and one line per skipped model (missing key).

    Args:
        names: registry names (and names defined by ``endpoints``); "all-llms" means the 24 LLMs.
        endpoints: ``NAME=MODEL@URL`` definitions from the command line.
        need_keys: False when replaying a recording (no provider is called, so no key is needed).

    Raises:
        ValueError: an unknown name (the message lists the registry).
    """
    extra = {e.name: e for e in map(parse_endpoint, endpoints)}
    known = {**REGISTRY, **extra}
    wanted: list[str] = []
    for n in names:
        wanted += [m.name for m in LLMS] if n == "all-llms" else [n]
    if not wanted:
        wanted = list(extra)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {', '.join(known)} (or 'all-llms'; add any "
                         "OpenAI-compatible server with --endpoint NAME=MODEL@URL)")
    run, skipped = [], []
    for n in dict.fromkeys(wanted):
        entry = known[n]
        if need_keys and (env := entry.missing_key()):
            skipped.append(f"skipping {n}: set {env} to run it")
            continue
        run.append(entry)
    for line in skipped:
        log.warning(line)
    return run, skipped


def entry_for(name: str, endpoints: list[str] = ()) -> ModelEntry:
    """The entry named ``name`` (endpoints first), for scoring and pricing stored results."""
    extra = {e.name: e for e in map(parse_endpoint, endpoints)}
    if name in extra or name in REGISTRY:
        return extra.get(name) or REGISTRY[name]
    return ModelEntry(name, "unknown", name, None, "n/a", None, None, None, kind="endpoint")


def with_settings(entry: ModelEntry, **settings: Any) -> ModelEntry:
    """A copy of ``entry`` with changed sampling settings (they are part of the replay key)."""
    return replace(entry, settings={**entry.settings, **settings})
