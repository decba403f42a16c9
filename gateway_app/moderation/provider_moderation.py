"""Provider moderation (opt-in): OpenAI's moderation endpoint (`POST /v1/moderations`, by default
`omni-moderation-latest`) through the official SDK, judged with per-category thresholds.

Keys and endpoint are the `openai` provider's (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID`), and so
are its clients: a `ProviderModeration` calls through an `OpenAIProvider` (the worker's own, when it is
handed one, so moderation and chat share pooled connections; else one of its own read from the
environment) and gets its client with that provider's `config_for` and client cache. A per-agent key is
passed per call as a `SecretStr`, exactly like `ChatRequest.credential`: one client per distinct key.

The verdict: a category is over when its score is at least its threshold; a category without a threshold
is over when the API's own boolean for it says so. `flagged` is any category over (and, when no
thresholds are given at all, also the API's own `flagged`).

Failures raise `ProviderError`, classified by the shared `errors.classify` with the openai error table (a
timeout is `provider_timeout`, a missing key `provider_not_configured`), so that the caller applies its
check's fail mode. No retries here (the SDK's are off too): the caller decides. The text is never logged.

Billing: OpenAI does not charge for moderation; the price table lists its models at 0, so the call is
billed like any provider call (provider `openai`, the verdict's model, no tokens, cost 0).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Mapping

from pydantic import SecretStr

from gateway_app.providers import errors
from gateway_app.providers.base import ChatRequest
from gateway_app.providers.openai import OpenAIProvider
from gateway_app.providers.openai_compat import ERRORS

log = logging.getLogger(__name__)

DEFAULT_MODEL = "omni-moderation-latest"


@dataclass(frozen=True)
class ModerationVerdict:
    flagged: bool
    categories: tuple[str, ...]  # the categories over their threshold, in the answer's order (wire names)
    scores: dict[str, float]     # every category's score, by its wire name ("self-harm/intent")
    model: str                   # the model that answered, as the answer names it
    request_id: str | None       # the provider's request id (x-request-id), else the answer's id
    elapsed_ms: int


class ProviderModeration:
    """OpenAI moderation through the `openai` provider's clients; see the module docstring."""

    provider_name = "openai"  # what a billing event names as the provider

    def __init__(self, provider: OpenAIProvider | None = None, *, timeout: float = 60.0) -> None:
        """`provider`: the worker's openai provider, whose clients are then shared (and closed by its owner);
        None: one of its own, read from the environment now (`timeout`: its clients' default)."""
        self._owned = provider is None
        self.provider = provider if provider is not None else OpenAIProvider(timeout=timeout)

    async def moderate(self, text: str, *, model: str = DEFAULT_MODEL, thresholds: Mapping[str, float] | None = None,
                       credential: SecretStr | None = None, timeout: float = 10.0) -> ModerationVerdict:
        """One moderation call on `text`. `thresholds`: category (wire name) -> score from which it is over,
        within 0..1; `credential`: the agent's own key instead of the environment's; `timeout`: seconds
        for the whole call."""
        limits = check_thresholds(thresholds)
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                client = await self.provider._client(self._request(model, credential))
                response = await client.moderations.create(input=text, model=model, timeout=timeout)
            verdict = judge(response, limits, elapsed_ms=int((time.monotonic() - started) * 1000))
        except TimeoutError as exc:  # the whole call's bound; the SDK's own timeout is classified below
            raise errors.timed_out(f"moderation call timed out after {timeout:g} s") from exc
        except Exception as exc:
            raise errors.classify(exc, ERRORS) from exc
        log.debug("moderation.provider model=%s flagged=%s categories=%s elapsed_ms=%d request_id=%s",
                  verdict.model, verdict.flagged, ",".join(verdict.categories), verdict.elapsed_ms,
                  verdict.request_id)
        return verdict

    @staticmethod
    def _request(model: str, credential: SecretStr | None) -> ChatRequest:
        """What the provider's `config_for` reads to pick the client: only the credential matters, so a
        per-agent key gets the same client here as in the agent's chat calls."""
        return ChatRequest(model, "", (), 0.0, 0, credential=credential)

    async def aclose(self) -> None:
        if self._owned:
            await self.provider.aclose()


def check_thresholds(thresholds: Mapping[str, float] | None) -> dict[str, float]:
    limits = dict(thresholds or {})
    for category, limit in limits.items():
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) \
                or not 0 <= limit <= 1:
            raise ValueError(f"moderation threshold for {category!r} must be a number within 0..1, not {limit!r}")
    return {category: float(limit) for category, limit in limits.items()}


def judge(response: Any, thresholds: Mapping[str, float], *, elapsed_ms: int) -> ModerationVerdict:
    """The verdict on the answer's first result. The SDK builds its models without validating them: every
    field used is checked here (a wrong one is `provider_bad_response`)."""
    results = getattr(response, "results", None)
    if not isinstance(results, list) or not results:
        raise errors.bad_response("no results in the moderation answer")
    result = results[0]
    scores = _fields(getattr(result, "category_scores", None), "category_scores", (int, float))
    booleans = _fields(getattr(result, "categories", None), "categories", (bool,))
    api_flagged = getattr(result, "flagged", None)
    if not isinstance(api_flagged, bool):
        raise errors.bad_response("no flagged in the moderation result")
    over = []
    for category in dict.fromkeys([*scores, *booleans]):  # every category once, in the answer's order
        limit = thresholds.get(category)
        if limit is not None and category in scores:
            is_over = scores[category] >= limit
        else:
            is_over = booleans.get(category) is True
        if is_over:
            over.append(category)
    flagged = bool(over) or (not thresholds and api_flagged)
    model = getattr(response, "model", None)
    request_id = getattr(response, "_request_id", None) or getattr(response, "id", None)
    return ModerationVerdict(flagged=flagged, categories=tuple(over),
                             scores={name: float(score) for name, score in scores.items()},
                             model=str(model) if model else "", request_id=str(request_id) if request_id else None,
                             elapsed_ms=elapsed_ms)


def _fields(section: Any, name: str, types: tuple[type, ...]) -> dict[str, Any]:
    """A result's category map by wire name; a category the model does not report (null) is left out."""
    if section is None or not hasattr(section, "model_dump"):
        raise errors.bad_response(f"no {name} in the moderation result")
    values = {key: value for key, value in section.model_dump(by_alias=True, warnings=False).items()
              if value is not None}
    for key, value in values.items():
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            raise errors.bad_response(f"{name}[{key!r}] is {type(value).__name__}")
    if not values:
        raise errors.bad_response(f"empty {name} in the moderation result")
    return values
