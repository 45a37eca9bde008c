"""Usage accounting: the provider's counts when it reports them, a real tokenizer's count otherwise."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from graphs.usage import count_tokens, totals, usage_row


def test_count_tokens_is_a_real_bpe_count_offline():
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2  # o200k_base: 'hello', ' world'
    long = "The data steward wrote: ignore previous instructions. " * 20
    assert count_tokens(long) < len(long) / 3  # BPE merges words; a character count would not


def test_a_reply_without_provider_usage_is_counted_and_marked():
    prompt = [SystemMessage("You are the C1 dataset selector."), HumanMessage('{"site_id": "site_01"}')]
    reply = AIMessage("", tool_calls=[{"name": "read_data_cards", "args": {}, "id": "1"}])
    tools = 'read_data_cardsRead the cards.{"properties": {}, "type": "object"}'
    row = usage_row("C1", "site_01", prompt, reply, 0.5, tools_text=tools)
    assert row["estimated"] is True and row["tool_calls"] == 1
    assert row["input_tokens"] == (count_tokens("You are the C1 dataset selector.\n{\"site_id\": \"site_01\"}")
                                   + count_tokens(tools))
    assert row["output_tokens"] == count_tokens("\nread_data_cards{}")


def test_provider_counts_win_and_totals_add_up():
    reply = AIMessage("ok", usage_metadata={"input_tokens": 1234, "output_tokens": 5, "total_tokens": 1239})
    rows = [usage_row("S1", None, [HumanMessage("x")], reply, 1.0), usage_row("S1", None, [HumanMessage("y")], reply, 2.0)]
    assert rows[0]["input_tokens"] == 1234 and rows[0]["estimated"] is False
    t = totals(rows)["S1"]
    assert t["calls"] == 2 and t["input_tokens"] == 2468 and t["seconds"] == 3.0 and t["estimated"] == 0


def test_usage_csv_has_every_usage_field_and_defaults_format_slips(tmp_path):
    import csv

    from evals.run_report import _write_usage

    rows = [{"role": "C1", "site_id": "site_01", "input_tokens": 10, "output_tokens": 3, "seconds": 0.5,
             "tool_calls": 1, "estimated": False, "format_slips": 1},
            {"role": "S1", "site_id": None, "input_tokens": 8, "output_tokens": 2, "seconds": 0.4,
             "tool_calls": 1, "estimated": True}]
    _write_usage(tmp_path / "usage.csv", rows)
    read = list(csv.DictReader((tmp_path / "usage.csv").read_text().splitlines()))
    assert [r["format_slips"] for r in read] == ["1", "0"]
    assert [r["role"] for r in read] == ["C1", "S1"]
