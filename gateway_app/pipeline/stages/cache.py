"""Response cache (profiles with `cache`): a request identical to an earlier one is answered from the
agent's `response-cache` table, without a provider call.

The key hashes everything that decides the answer: the targets (provider, model, options, the profile's
and its fallbacks'), the whole rendered request (system prompt, every message of the context, the new
input), temperature, max_tokens, stop, tools, the reply format and length, and the profile's plugin
stages with their options. Credentials are not part of it (the same model answers the same way whoever
pays). Answers that call tools are not cached: their call ids must be new each time.

A hit counts against the agent's RPM (admission already counted the request) but not its TPM (the
reservation goes back in full: no tokens were used). Its reply says `cache_hit: true`; its billing event
has cost 0 and records the tokens and the cost it saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from decimal import Decimal

from agents_tables.response_cache import CachedAnswer
from gateway_app.contract.events import AgentProfile
from gateway_app.pipeline.context import MessageContext, StageAnswer
from gateway_app.pipeline.stage import Services
from gateway_app.providers.base import ChatRequest

log = logging.getLogger(__name__)


def request_hash(profile: AgentProfile, request: ChatRequest) -> str:
    decided_by = {
        "targets": [[profile.provider, profile.model, profile.options]] +
                   [[f.provider, f.model, f.options] for f in profile.fallbacks],
        "system": request.system_prompt,
        "messages": [asdict(m) for m in request.messages],
        "temperature": request.temperature, "max_tokens": request.max_tokens, "stop": list(request.stop),
        "tools": list(request.tools), "format": profile.response_format.model_dump(mode="json"),
        "max_reply_chars": profile.max_reply_chars,
        "stages": [[s.name, s.options] for s in profile.stages],
    }
    canonical = json.dumps(decided_by, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    name = "cache"

    def __init__(self, services: Services) -> None:
        self.store = services.stores.cache
        self.counters = services.counters
        self.metrics = services.metrics

    async def run(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        if profile.cache is None or ctx.stage_answer is not None:
            return
        ctx.cache_key = request_hash(profile, ctx.require_request())
        entry = self.store.lookup(profile.agent_id, ctx.cache_key, int(time.time() * 1000))
        self.metrics.cache(hit=entry is not None)
        if entry is None:
            self.counters["cache_misses"] += 1
            return
        self.counters["cache_hits"] += 1
        self.counters["cache_saved_microusd"] += int(Decimal(entry.cost_usd) * 1_000_000)
        result = entry.result()
        ctx.cache_hit, ctx.stage_answer, ctx.result = entry, StageAnswer(self.name, result), result
        ctx.truncated = entry.truncated


def entry_for(ctx: MessageContext, cost_usd: Decimal, ttl_seconds: int, now_ms: int) -> CachedAnswer | None:
    """What an ok provider answer leaves in the cache (None: not cacheable)."""
    result, answer = ctx.result, ctx.answer
    if result is None or answer is None or ctx.stage_answer is not None or result.tool_calls:
        return None
    used = [a.result.usage for a in ctx.answers]
    return CachedAnswer(
        text=result.text, finish_reason=result.finish_reason, tool_calls=(),
        input_tokens=sum(u.input_tokens for u in used), output_tokens=sum(u.output_tokens for u in used),
        provider=answer.target.provider, model=answer.target.model, cost_usd=f"{cost_usd:f}",
        created_ms=now_ms, expires_ms=now_ms + ttl_seconds * 1000, truncated=ctx.truncated)
