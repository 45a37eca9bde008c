"""The model registry: the 24 compared LLMs with prices and keys, scripted and local entries, endpoints."""

from __future__ import annotations

import logging

import pytest

from evals.models import LLMS, REGISTRY, entry_for, parse_endpoint, resolve
from graphs.scripted.model import ScriptedChatModel

NAMED_IN_THE_RESEARCH = ("gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini", "gpt-4-turbo", "gpt-4", "gpt-3.5-turbo",
                         "o4-mini", "o3-mini", "claude-3.7-sonnet", "deepseek-v3", "qwen3-30b-a3b", "qwq-32b")


def test_24_llms_with_provider_prices_and_key_variables():
    assert len(LLMS) == 24 and len({m.name for m in LLMS}) == 24
    assert set(NAMED_IN_THE_RESEARCH) <= {m.name for m in LLMS}
    for m in LLMS:
        assert m.kind == "llm" and m.provider and m.model_id and m.base_url.startswith("https://")
        assert m.price_in is not None and m.price_out is not None and 0 < m.price_in <= m.price_out * 4
        assert m.key_env and m.key_env.endswith("_API_KEY")
        assert m.size_class in ("small", "medium", "large", "frontier")
    assert {m.open_weights for m in LLMS} == {True, False}
    for family in ("llama-3-", "llama-3.1-", "llama-3.3-", "mistral", "gemma", "phi"):
        assert any(m.name.startswith(family) for m in LLMS), family


def test_cost_uses_the_price_table():
    gpt41 = REGISTRY["gpt-4.1"]
    assert gpt41.cost(1_000_000, 500_000) == pytest.approx(gpt41.price_in + 0.5 * gpt41.price_out)
    assert REGISTRY["scripted"].cost(10_000, 10_000) == 0.0
    assert parse_endpoint("mine=some-model@http://localhost:8000/v1").cost(1000, 1000) is None


def test_scripted_is_a_policy_never_an_llm():
    s = REGISTRY["scripted"]
    assert s.kind == "scripted" and "not an LLM" in s.label and s.key_env is None
    assert isinstance(s.make(), ScriptedChatModel)


def test_local_models_need_no_key_and_use_the_model_factory():
    for name in ("local", "local:qwen2.5-coder-1.5b"):
        m = REGISTRY[name]
        assert m.kind == "local" and m.key_env is None and m.model_id == name and m.missing_key() is None


def test_models_without_a_key_are_skipped_with_one_line(monkeypatch, caplog):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("DEEPINFRA_API_KEY", "test-key")
    with caplog.at_level(logging.WARNING):
        run, skipped = resolve(["scripted", "gpt-4.1", "llama-3.3-70b"])
    assert [m.name for m in run] == ["scripted", "llama-3.3-70b"]
    assert skipped == ["skipping gpt-4.1: set OPENAI_API_KEY to run it"]
    assert "skipping gpt-4.1" in caplog.text


def test_replay_needs_no_keys(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    run, skipped = resolve(["gpt-4o"], need_keys=False)
    assert [m.name for m in run] == ["gpt-4o"] and not skipped


def test_all_llms_expands_and_unknown_names_list_the_registry(monkeypatch):
    for m in LLMS:
        monkeypatch.delenv(m.key_env, raising=False)
    run, skipped = resolve(["all-llms"])
    assert not run and len(skipped) == 24
    with pytest.raises(ValueError, match="gpt-4.1"):
        resolve(["gpt-5-ultra"])


def test_a_keyed_llm_builds_an_openai_compatible_client_without_network(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    model = REGISTRY["claude-3.7-sonnet"].make()
    assert model.model_name == "claude-3-7-sonnet-20250219" and "anthropic" in str(model.openai_api_base)
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    assert REGISTRY["o4-mini"].settings == {}  # reasoning models reject a temperature


def test_endpoints_from_the_command_line(monkeypatch):
    e = parse_endpoint("my-vllm=Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1")
    assert (e.name, e.model_id, e.base_url, e.key_env) == ("my-vllm", "Qwen/Qwen2.5-7B-Instruct",
                                                           "http://localhost:8000/v1", None)
    monkeypatch.setenv("MY_VLLM_API_KEY", "secret")
    assert parse_endpoint("my-vllm=m@http://h/v1").key_env == "MY_VLLM_API_KEY"
    run, _ = resolve(["my-vllm"], ["my-vllm=m@http://h/v1"])
    assert run[0].kind == "endpoint"
    assert entry_for("my-vllm", ["my-vllm=m@http://h/v1"]).base_url == "http://h/v1"
    with pytest.raises(ValueError, match="NAME=MODEL@URL"):
        parse_endpoint("just-a-name")
