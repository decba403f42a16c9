"""Price lookup and cost arithmetic in Decimal (never float: billing must recompute to the cent).

The table in force is the newest `prices-<version>.json` in this folder; each billing event names the
version it used, so a replay can recompute costs with the same or a newer table.

An entry is priced per million tokens (`input`, `cached_input`, `output`) or per unit (`per_second` of audio
transcribed, `per_character` spoken); one entry may have both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)
PER_TOKENS = Decimal(1_000_000)
QUANTUM = Decimal("0.00000001")
UNIT_KEYS = {"seconds": "per_second", "characters": "per_character"}  # a billing event's units -> price key


@dataclass(frozen=True)
class PriceTable:
    version: str
    models: dict[str, dict[str, dict[str, str]]]

    def rates(self, provider: str, model: str) -> tuple[Decimal, Decimal, Decimal] | None:
        """(input, cached input, output) per million tokens; cached input defaults to the input rate."""
        by_model = self.models.get(provider, {})
        entry = by_model.get(model) or by_model.get("*")
        if entry is None or "input" not in entry:  # none, or a unit-priced entry only
            return None
        return Decimal(entry["input"]), Decimal(entry.get("cached_input", entry["input"])), Decimal(entry["output"])

    def cost(self, provider: str, model: str, input_tokens: int, output_tokens: int,
             cached_input_tokens: int = 0) -> Decimal:
        """`input_tokens` includes `cached_input_tokens`, which are billed at the cached rate."""
        rates = self.rates(provider, model)
        if rates is None:
            # Billed at 0 but with tokens recorded: a replay with an updated table recomputes it.
            log.warning("pricing.unknown_model provider=%s model=%s version=%s", provider, model, self.version)
            return Decimal(0).quantize(QUANTUM)
        cached = min(cached_input_tokens, input_tokens)
        total = rates[0] * (input_tokens - cached) + rates[1] * cached + rates[2] * output_tokens
        return (total / PER_TOKENS).quantize(QUANTUM)


    def unit_rate(self, provider: str, model: str, units: str) -> Decimal | None:
        """USD per second or per character (`units`: seconds | characters); None when the table has none."""
        key = UNIT_KEYS.get(units)
        by_model = self.models.get(provider, {})
        entry = by_model.get(model) or by_model.get("*")
        if key is None or entry is None or key not in entry:
            return None
        return Decimal(entry[key])

    def unit_cost(self, provider: str, model: str, units: str, quantity: int) -> Decimal:
        """`quantity` seconds or characters at the model's unit price; 0 (logged) when it has none."""
        rate = self.unit_rate(provider, model, units)
        if rate is None:
            log.warning("pricing.unknown_model provider=%s model=%s version=%s units=%s", provider, model,
                        self.version, units)
            return Decimal(0).quantize(QUANTUM)
        return (rate * quantity).quantize(QUANTUM)


@lru_cache(maxsize=1)
def current_table() -> PriceTable:
    newest = max(Path(__file__).parent.glob("prices-*.json"))
    data = json.loads(newest.read_text())
    return PriceTable(version=data["version"], models=data["models"])
