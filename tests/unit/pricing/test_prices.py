from decimal import Decimal

from gateway_app.pricing.prices import PriceTable, current_table


def test_cost_is_exact_decimal_per_million_tokens():
    table = PriceTable("t", {"p": {"m": {"input": "0.15", "output": "0.60"}, "*": {"input": "1", "output": "1"}}})
    assert table.cost("p", "m", 1_000_000, 500_000) == Decimal("0.45")
    assert table.cost("p", "m", 1, 1) == Decimal("0.00000075")
    assert table.cost("p", "other", 10, 0) == Decimal("0.00001")
    assert table.cost("unknown", "m", 10, 10) == Decimal(0)


def test_cached_input_tokens_are_billed_at_the_cached_rate():
    table = PriceTable("t", {"p": {"m": {"input": "3.00", "cached_input": "0.30", "output": "15.00"},
                                   "n": {"input": "1.00", "output": "2.00"}}})
    # 100 000 input of which 90 000 cached: 10 000 * 3 + 90 000 * 0.30 = 57 000 per million.
    assert table.cost("p", "m", 100_000, 0, cached_input_tokens=90_000) == Decimal("0.057")
    assert table.cost("p", "n", 100, 0, cached_input_tokens=100) == table.cost("p", "n", 100, 0)


def test_current_table_prices_echo_at_zero():
    table = current_table()
    assert table.version and table.cost("echo", "anything", 100, 100) == 0


def test_unit_priced_entries_cost_per_second_and_per_character():
    table = PriceTable("t", {"p": {"stt": {"per_second": "0.0001"}, "tts": {"per_character": "0.000015"},
                                   "chat": {"input": "1", "output": "2"}},
                             "any": {"*": {"input": "0", "output": "0", "per_second": "0"}}})
    assert table.unit_cost("p", "stt", "seconds", 90) == Decimal("0.009")
    assert table.unit_cost("p", "tts", "characters", 1000) == Decimal("0.015")
    assert table.unit_cost("any", "whatever", "seconds", 60) == 0
    assert table.unit_rate("p", "stt", "characters") is None and table.unit_rate("p", "chat", "seconds") is None
    assert table.unit_cost("p", "chat", "seconds", 10) == 0  # no unit price: billed 0 (logged), recomputable
    assert table.rates("p", "stt") is None  # a unit-only entry has no token rates


def test_the_current_table_prices_openai_speech_models():
    table = current_table()
    assert table.version == "2026-12-01"
    assert table.unit_cost("openai", "whisper-1", "seconds", 60) == Decimal("0.006")  # $0.006 per minute
    assert table.unit_cost("openai", "gpt-4o-transcribe", "seconds", 60) == Decimal("0.006")
    assert table.unit_cost("openai", "gpt-4o-mini-transcribe", "seconds", 60) == Decimal("0.003")
    assert table.unit_cost("openai", "tts-1", "characters", 1_000_000) == Decimal("15")
    assert table.unit_cost("openai", "tts-1-hd", "characters", 1_000_000) == Decimal("30")
    assert table.cost("openai", "gpt-4o-mini", 1_000_000, 0) == Decimal("0.15")  # token prices unchanged
