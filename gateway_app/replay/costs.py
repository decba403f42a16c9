"""Money in a replay: which price table, what a call may cost before it is made, and the spend cap.

The estimate of a call is an upper bound, as the gateway's budget reservation is: the prompt (system
prompt and message) at `ceil(chars / 4)` tokens, plus all of the profile's `max_tokens` as output, at the
target model's price. Prompts that tokenize denser than 4 characters a token can cost a little more.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from gateway_app.contract.events import AgentProfile
from gateway_app.pricing.prices import PriceTable, current_table

PRICING_DIR = Path(__file__).resolve().parents[1] / "pricing"


def price_table(spec: str | None) -> PriceTable:
    """None: the table in force; a path to a price-table JSON file; or a version of gateway_app/pricing."""
    if spec is None:
        return current_table()
    path = Path(spec)
    if not path.is_file():
        path = PRICING_DIR / f"prices-{spec}.json"
    if not path.is_file():
        versions = sorted(p.stem.removeprefix("prices-") for p in PRICING_DIR.glob("prices-*.json"))
        raise ValueError(f"no price table {spec!r}: a JSON file, or one of the versions {', '.join(versions)}")
    data = json.loads(path.read_text())
    if not isinstance(data.get("version"), str) or not isinstance(data.get("models"), dict):
        raise ValueError(f"{path}: a price table has a string 'version' and a 'models' object")
    return PriceTable(version=data["version"], models=data["models"])


@dataclass(frozen=True)
class TokenEstimate:
    input_tokens: int
    output_tokens: int


def estimate_tokens(profile: AgentProfile, content: str) -> TokenEstimate:
    prompt_chars = len(profile.system_prompt) + len(content)
    return TokenEstimate(math.ceil(prompt_chars / 4), profile.max_tokens)


def estimate_cost(table: PriceTable, provider: str, model: str, tokens: TokenEstimate) -> Decimal | None:
    """None when the table has no price for the model (the estimate is unknown, not 0)."""
    if table.rates(provider, model) is None:
        return None
    return table.cost(provider, model, tokens.input_tokens, tokens.output_tokens)


class SpendCap:
    """`--max-cost-usd` over a whole run (across resumes): a call starts only if what was spent, what the
    calls in flight may still cost and its own estimate all fit under the cap."""

    def __init__(self, cap: Decimal | None, spent: Decimal = Decimal(0)) -> None:
        self.cap = cap
        self.spent = spent
        self.reserved = Decimal(0)

    def reserve(self, estimate: Decimal) -> bool:
        if self.cap is not None and self.spent + self.reserved + estimate > self.cap:
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: Decimal, actual: Decimal) -> None:
        self.reserved -= estimate
        self.spent += actual


@dataclass
class Estimate:
    """A sum of estimates, and how many calls had no price to estimate with."""

    usd: Decimal = Decimal(0)
    tokens: int = 0
    calls: int = 0
    unknown: int = 0

    def add(self, cost: Decimal | None, tokens: TokenEstimate | None) -> None:
        self.calls += 1
        if cost is None or tokens is None:
            self.unknown += 1
            return
        self.usd += cost
        self.tokens += tokens.input_tokens + tokens.output_tokens

    def line(self) -> str:
        known = self.calls - self.unknown
        text = f"estimated provider cost: ${self.usd:f} for {known} calls (at most {self.tokens} tokens)"
        if self.unknown:
            text += f"; {self.unknown} more at unknown prices (no profile, or a model the price table lacks)"
        return text

    def as_json(self) -> dict:
        return {"usd": f"{self.usd:f}", "tokens": self.tokens, "calls": self.calls, "unknown": self.unknown}
