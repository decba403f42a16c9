"""The interface every built-in stage implements, and what stages are built from."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from gateway_app.credentials.resolver import CredentialResolver
from gateway_app.observability.metrics import GatewayMetrics
from gateway_app.pipeline.budgets import Budgets
from gateway_app.pipeline.caller import Caller
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.turns import Turns
from gateway_app.plugins.discovery import Plugins
from gateway_app.pricing.prices import PriceTable
from gateway_app.publisher import Publisher
from gateway_app.settings import Settings
from agents_tables.tables import Stores

if TYPE_CHECKING:  # the fetcher imports the intake's checks; only its type is needed here
    from gateway_app.pipeline.profile_service import ProfileService


class Finished(Exception):
    """Raised by a stage that found the message needs nothing more (e.g. a copy of it was answered while
    it waited for its turn): the pipeline stops there, and the message is acked. Not an error."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class Stage(Protocol):
    """One step of a message's way from admitted to published. `run` either returns (the next stage
    runs) or raises a `GatewayError` (the message gets its error reply); it may wait, but must never
    swallow a cancellation (a rebalance)."""

    name: str

    async def run(self, ctx: MessageContext) -> None: ...


@dataclass(frozen=True)
class Services:
    """What the stages of one worker share."""

    settings: Settings
    stores: Stores
    turns: Turns
    caller: Caller
    publisher: Publisher
    prices: PriceTable
    plugins: Plugins
    counters: dict[str, int]  # shown by /health; the stages add to them
    credentials: CredentialResolver | None = None  # per-agent keys by reference (None: environment keys only)
    provider_moderation: Any = None  # moderation.provider_moderation.ProviderModeration (None: not available)
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)  # this worker's /metrics
    budgets: Budgets = field(default_factory=Budgets)  # budget reservations of the messages in flight
    warmed: asyncio.Event = field(default_factory=asyncio.Event)  # start-up warm-up done (/ready waits)
    profile_service: ProfileService | None = None  # profiles over HTTP for parked messages (None: events only)
