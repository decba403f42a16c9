"""Conversation views.

- `GET /agents/{agent_id}/conversations/{room_id}`: the turns kept for the room (ids, kinds, roles,
  token counts, times); their text only with `?content=true`. Answered by the agent's owner.
- `DELETE /agents/{agent_id}/conversations/{room_id}` (admin): forget the room's conversation. Not done in
  place: the view publishes a `conversation-cleared` event, so the clear takes its exact place in the
  agent's stream (a message already read is forgotten with it, a later one is not) and is done by the
  owner with changelog tombstones. Answers 202 with the event it published; optional `?before=` (ISO
  8601) forgets only the exchanges started before that time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import faust
from faust.web import Request, Response

from agents_tables.conversations import Conversation, Turn
from gateway_app.contract.events import ConversationCleared
from gateway_app.pipeline.stage import Services
from gateway_app.web.routing import routed

TRUE = ("1", "true", "yes")


def turn_view(turn: Turn, with_content: bool) -> dict[str, Any]:
    roles = (["user"] if turn.kind == "message" else ["tool"] * len(turn.results)) + \
        (["assistant"] if turn.reply or turn.tool_calls else [])
    view: dict[str, Any] = {"id": turn.id, "kind": turn.kind, "roles": roles, "tokens": turn.tokens,
                            "at_ms": turn.at_ms, "reply_to": turn.reply_to,
                            "tool_call_ids": [c.id for c in turn.tool_calls],
                            "result_ids": [r.tool_call_id for r in turn.results]}
    if with_content:
        view["user"] = turn.user
        view["results"] = [{"tool_call_id": r.tool_call_id, "content": r.content, "is_error": r.is_error}
                           for r in turn.results]
        view["reply"] = turn.reply
        view["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls]
    return view


def conversation_view(agent_id: str, room_id: str, conv: Conversation, with_content: bool) -> dict[str, Any]:
    view = {"agent_id": agent_id, "room_id": room_id, "turns": [turn_view(t, with_content) for t in conv.turns],
            "total_tokens": sum(t.tokens for t in conv.turns), "last_at_ms": conv.last_at_ms,
            "ttl_seconds": conv.ttl_ms // 1000, "token_ratio": conv.ratio,
            "summary_through": conv.summary_through}  # the newest turn the rolling summary covers, if any
    if with_content:
        view["summary"] = conv.summary
    return view


def register(app: faust.App, guarded: type, services: Services, topic: str) -> None:
    def error(view, status: int, code: str, message: str) -> Response:
        return view.json({"error": {"code": code, "message": message}}, status=status)

    @app.page("/agents/{agent_id}/conversations/{room_id}")
    class ConversationView(guarded):
        async def get(self, request: Request, agent_id: str, room_id: str) -> Response:
            with_content = request.query.get("content", "").lower() in TRUE

            async def local() -> Response:
                conv = services.stores.conversations.get(agent_id, room_id)
                if conv is None:
                    return error(self, 404, "conversation_not_found",
                                 f"no conversation of agent {agent_id!r} in room {room_id!r}")
                return self.json(conversation_view(agent_id, room_id, conv, with_content))

            return await routed(self, request, topic, agent_id, local)

        async def delete(self, request: Request, agent_id: str, room_id: str) -> Response:
            raw_before = request.query.get("before")
            try:
                before = datetime.fromisoformat(raw_before) if raw_before else None
                event = ConversationCleared(agent_id=agent_id, room_id=room_id, before=before,
                                            clear_id=f"web-{uuid.uuid4()}")
            except ValueError as exc:
                return error(self, 400, "invalid_request", str(exc)[:300])
            delivery = await services.publisher.clear_conversation(event)
            await delivery
            return self.json({"accepted": True, "event": event.model_dump(mode="json")}, status=202)
