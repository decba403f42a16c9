"""One example of every event of the contract, by topic: `gateway contract` prints each with its
schema, and a unit test validates each against its model (so they cannot drift)."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "ai-message-created": {
        "messageId": "m-123", "agentId": "support-bot", "roomId": "room-9", "userId": "u-7",
        "content": "Where is my order?", "createdAt": "2026-11-26T10:00:00Z", "metadata": {"locale": "en"}},
    "agent-profile-created": {
        "agentId": "support-bot", "version": 1, "provider": "openai", "model": "gpt-4o-mini",
        "systemPrompt": "You help customers."},
    "agent-profile-updated": {
        "agentId": "support-bot", "version": 4, "name": "Support bot", "provider": "openai", "model": "gpt-4o-mini",
        "systemPrompt": "You help customers.", "temperature": 0.3, "maxTokens": 512,
        "rateLimits": {"rpm": 60, "tpm": 40000}, "stream": True,
        "tools": [{"type": "function", "function": {"name": "order_status", "description": "An order's status",
                                                    "parameters": {"type": "object",
                                                                   "properties": {"order_id": {"type": "string"}}}}}],
        "context": {"maxTurns": 20, "maxTokens": 4000, "ttlSeconds": 604800},
        "cache": {"ttlSeconds": 3600},
        "responseFormat": {"type": "json", "schema": {"type": "object", "required": ["answer"]}},
        "maxReplyChars": 2000,
        "language": "auto",
        "postProcessing": ["sentiment"],
        "collaborators": [{"agentId": "billing-bot", "when": "tool", "description": "invoices and refunds"}],
        "budget": {"usdPerDay": "5.00", "usdPerMonth": "100.00",
                   "fallback": {"provider": "local", "model": "llama3.1:8b"}},
        "voice": {"model": "tts-1", "voice": "alloy", "format": "mp3", "transcriptionModel": "whisper-1"}},
    "agent-profile-deleted": {"agentId": "support-bot", "version": 5},
    "ai-tool-results": {
        "messageId": "tr-77", "replyTo": "m-123", "agentId": "support-bot", "roomId": "room-9", "userId": "u-7",
        "results": [{"toolCallId": "call_8f2c", "content": "{\"status\": \"shipped\"}", "isError": False}]},
    "moderation-signals": {
        "signalId": "sig-501", "signal": "inappropriate", "roomId": "room-9", "agentId": None, "userId": "u-7",
        "severity": "medium", "score": 0.82, "categories": ["harassment"], "ttlSeconds": 3600,
        "createdAt": "2026-11-26T10:02:00Z"},
    "conversation-cleared": {
        "agentId": "support-bot", "roomId": "room-9", "before": "2026-11-26T00:00:00Z", "clearId": "gdpr-991"},
    "ai-message-reply": {
        "reply_id": "a49cc9ba-d81f-5154-8e50-ac11eb784f9e", "message_id": "tr-77", "agent_id": "support-bot",
        "room_id": "room-9", "user_id": "u-7", "content": "Your order shipped today.", "status": "ok",
        "error": None, "provider": "openai", "model": "gpt-4o-mini", "profile_version": 4,
        "usage": {"input_tokens": 61, "output_tokens": 6, "cached_input_tokens": 0, "reasoning_tokens": 0},
        "latency_ms": 840, "created_at": "2026-11-26T10:00:01.2Z", "fallback_index": 0, "attempts": 1,
        "finish_reason": "stop", "provider_request_id": "req_8f2c", "tool_calls": [], "stages": [],
        "reply_to": "m-123", "cache_hit": False, "truncated": False,
        "moderation": {"signals": [{"signal_id": "sig-501", "signal": "inappropriate", "severity": "medium"}],
                       "verdicts": [{"stage": "output", "check": "pii", "verdict": "flagged", "action": "mask",
                                     "categories": ["phone"]}]},
        "language": "en", "sentiment": {"reply": {"label": "positive", "score": 0.4404}, "user": None},
        "ranking": {"candidates": 3, "chosen": 1, "failed": [["refusal"], [], ["pii"]],
                    "reason": "candidate 1 passed every check"},
        "contract_version": 1},
    "ai-message-reply-chunks": {
        "chunk_id": "9d0e", "message_id": "m-123", "reply_id": "a49cc9ba-d81f-5154-8e50-ac11eb784f9e",
        "agent_id": "support-bot", "room_id": "room-9", "stream_id": "5f0c2b", "attempt": 1, "seq": 0,
        "delta": "Your order", "final": False, "created_at": "2026-11-26T10:00:00.9Z", "contract_version": 1},
    "ai-billing-events": {
        "event_id": "0f3c", "message_id": "m-124", "agent_id": "support-bot", "user_id": "u-7", "room_id": "room-9",
        "provider": "openai", "model": "gpt-4o-mini", "input_tokens": 0, "output_tokens": 0, "cost_usd": "0",
        "price_version": "2026-11-27", "created_at": "2026-11-26T10:00:01.2Z", "cache_hit": True,
        "saved_input_tokens": 23, "saved_output_tokens": 6, "saved_cost_usd": "0.00000705",
        "contract_version": 1},
    "ai-moderation-events": {
        "event_id": "3c9a", "message_id": "tr-77", "agent_id": "support-bot", "room_id": "room-9", "user_id": "u-7",
        "stage": "output", "check": "pii", "verdict": "flagged", "action": "mask", "categories": ["phone"],
        "scores": {}, "signal_id": None, "duration_ms": 1, "created_at": "2026-11-26T10:00:01.1Z",
        "content": None,
        "sentiment": {"reply": {"label": "neutral", "score": 0.0}, "user": {"label": "negative", "score": -0.4767}},
        "contract_version": 1},
    "ai-message-dlq": {
        "dlq_id": "5b1e", "source_topic": "ai-tool-results", "source_partition": 3, "source_offset": 1041,
        "key_b64": "cm9vbS05", "value_b64": "e30=", "error_code": "unknown_tool_call",
        "reason": "no tool calls of message 'm-9' in this room's conversation", "attempts": 0,
        "message_id": "tr-78", "agent_id": "support-bot", "failed_at": "2026-11-26T10:00:00.5Z",
        "attempt_history": [], "contract_version": 1},
    "ai-message-audio": {
        "audio_id": "7c41", "reply_id": "a49cc9ba-d81f-5154-8e50-ac11eb784f9e", "message_id": "m-125",
        "agent_id": "support-bot", "room_id": "room-9", "seq": 0, "final": False, "format": "mp3",
        "data_b64": "SUQzBAAAAAAAI1RTU0UAAAAPAAADTGF2ZjYwLjMuMTAwAAAAAAAAAAAAAAD/", "created_at":
        "2026-11-26T10:00:02.1Z", "contract_version": 1},
}
