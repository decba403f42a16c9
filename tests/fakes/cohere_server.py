"""A local server speaking Cohere's Chat v2 API (`POST /v2/chat`, streamed when the body says so).

V2 bodies (`message.content[]`, upper-case `finish_reason`, `usage.billed_units` and `usage.tokens`),
the SSE events message-start, content-start, content-delta, content-end, message-end, and the
`{"id", "message"}` error body. `tokens` adds a fixed prompt-template overhead to the input, as the
real API does; billed units do not. Tool messages must answer the tool calls of the assistant message
right before them, and `response_format` must have a documented shape, or the answer is a 400 (the
`{"id", "message"}` body). Faults and the scripted answers: see `tests.fakes.base`.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import (
    TOOL_ARGUMENT_PIECES,
    TOOL_ARGUMENTS,
    FakeServer,
    content_text,
    sse_event,
    tool_sequence_problem,
    wants_tool,
    word_pieces,
    words,
)

TEMPLATE_TOKENS = 60


def response_format_problem(response_format: Any) -> str | None:
    """Chat v2 takes `text` or `json_object` (with an optional `json_schema`); a schema with `text` is refused."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("text", "json_object"):
        return f"invalid response_format type {kind!r}"
    if kind == "text" and "json_schema" in response_format:
        return "json_schema must not be specified when the response_format type is text"
    return None


class FakeCohere(FakeServer):
    def __init__(self) -> None:
        super().__init__("cohere")
        self.app.router.add_post("/v2/chat", self.chat)

    def headers(self) -> dict[str, str]:
        return {"x-request-id": str(uuid.uuid4()), "num_tokens": "0"}

    def error(self, status: int, retry_after: bool = True, message: str | None = None) -> web.Response:
        headers = self.headers()
        if status == 429 and retry_after:
            headers["retry-after"] = "1"
        return web.json_response({"id": str(uuid.uuid4()), "message": message or f"injected fault {status}"},
                                 status=status, headers=headers)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return self.error(401, message="no api key supplied")
        body = await request.json()
        messages = body["messages"]
        last = content_text(messages[-1].get("content"))
        fault = self.fault_for(body, last)
        problem = tool_sequence_problem(messages) or response_format_problem(body.get("response_format"))
        if problem is not None:
            return self.error(400, message=problem)
        early = await self.transport_fault(request, fault, self.error)
        if early is not None:
            return early
        if fault is not None and fault.kind == "error200" and not body.get("stream"):
            return web.json_response({"id": str(uuid.uuid4()), "message": "internal server error"},
                                     headers=self.headers())
        users = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        text = self.answer_text("fake-cohere says:", last, users)
        usage = self.usage(body, text)
        chat_id = str(uuid.uuid4())
        tool = wants_tool(body, last)
        if tool is not None:
            return await self.tool_answer(request, body, chat_id, tool, usage)
        if body.get("stream"):
            finish = "ERROR" if fault is not None and fault.kind == "error200" else "COMPLETE"
            return await self.sse(request, fault, self.events(chat_id, text, usage, finish), self.headers())
        response = {"id": chat_id, "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}, "usage": usage}
        return await self.json_answer(request, fault, response, self.headers())

    async def tool_answer(self, request: web.Request, body: dict[str, Any], chat_id: str, tool: str,
                          usage: dict[str, Any]) -> web.StreamResponse:
        call_id = f"{tool}_{uuid.uuid4().hex[:8]}"
        if not body.get("stream"):
            call = {"id": call_id, "type": "function", "function": {"name": tool, "arguments": TOOL_ARGUMENTS}}
            return web.json_response({"id": chat_id, "finish_reason": "TOOL_CALL", "usage": usage, "message": {
                "role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [call]}}, headers=self.headers())
        start = {"id": call_id, "type": "function", "function": {"name": tool, "arguments": ""}}
        events = [
            sse_event({"id": chat_id, "type": "message-start", "delta": {"message": {
                "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}},
                "message-start"),
            sse_event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look it up."}}},
                      "tool-plan-delta"),
            sse_event({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": start}}},
                      "tool-call-start"),
            *(sse_event({"type": "tool-call-delta", "index": 0,
                         "delta": {"message": {"tool_calls": {"function": {"arguments": piece}}}}}, "tool-call-delta")
              for piece in TOOL_ARGUMENT_PIECES),
            sse_event({"type": "tool-call-end", "index": 0}, "tool-call-end"),
            sse_event({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": usage}}, "message-end"),
        ]
        return await self.sse(request, None, events, self.headers())

    @staticmethod
    def usage(body: dict[str, Any], text: str) -> dict[str, Any]:
        prompt = words(" ".join(content_text(m.get("content")) for m in body["messages"]))
        return {"billed_units": {"input_tokens": prompt, "output_tokens": words(text)},
                "tokens": {"input_tokens": prompt + TEMPLATE_TOKENS, "output_tokens": words(text)},
                "cached_tokens": 0}

    @staticmethod
    def events(chat_id: str, text: str, usage: dict[str, Any], finish: str) -> list[bytes]:
        events = [
            sse_event({"id": chat_id, "type": "message-start", "delta": {"message": {
                "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}},
                "message-start"),
            sse_event({"type": "content-start", "index": 0,
                       "delta": {"message": {"content": {"type": "text", "text": ""}}}}, "content-start"),
        ]
        events += [sse_event({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}},
                             "content-delta") for p in word_pieces(text)]
        events += [
            sse_event({"type": "content-end", "index": 0}, "content-end"),
            sse_event({"type": "message-end", "delta": {"finish_reason": finish, "usage": usage}}, "message-end"),
        ]
        return events
