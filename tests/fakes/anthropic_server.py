"""A local server speaking Anthropic's Messages API (`POST /v1/messages`).

Messages bodies with content blocks, `stop_reason`, usage split into uncached input, cache reads and
output; the SSE stream message_start, content_block_start, ping, content_block_delta (text_delta),
content_block_stop, message_delta (cumulative usage), message_stop; the `{"type": "error", ...}`
envelope with the documented error types (529 overloaded); `request-id` headers. The system prompt's
words are reported as cache reads. Faults and the scripted answers: see `tests.fakes.base`; `error200`
on a stream is an `event: error` (overloaded_error) mid-stream.

A 400 `invalid_request_error` answers what the real API refuses (`request_problem`): a top-level field
it does not take (`response_format` included), a first message not from the user, two turns of one role
in a row, empty content, a `tool_result` whose `tool_use_id` is not a `tool_use` of the assistant turn
right before, and a `tool_use` not answered by the `tool_result` blocks that start the next user turn.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from anthropic.types import message_create_params

from tests.fakes.base import TOOL_ARGUMENT_PIECES, FakeServer, content_text, sse_event, wants_tool, word_pieces, words

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


# The top-level fields the Messages API takes, as the SDK declares them: any other one (an OpenAI-style
# `response_format`, say) is refused, as the real API refuses extra inputs.
KNOWN_FIELDS = frozenset(message_create_params.MessageCreateParamsStreaming.__required_keys__
                         | message_create_params.MessageCreateParamsStreaming.__optional_keys__)


def request_problem(body: dict[str, Any]) -> str | None:
    """What the real API would refuse in this body (None: nothing): unknown fields, roles that do not
    alternate or do not start with the user, empty content, and tool blocks that do not pair up."""
    extra = sorted(set(body) - KNOWN_FIELDS)
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return 'messages: first message must use the "user" role'
    for index, message in enumerate(messages):
        problem = turn_problem(index, message, messages[index - 1] if index else None, final=index == len(messages) - 1)
        if problem is not None:
            return problem
    if tool_use_ids(messages[-1]):  # nothing after it can answer its calls
        return unanswered(len(messages) - 1, tool_use_ids(messages[-1]))
    return None


def turn_problem(index: int, message: dict[str, Any], before: dict[str, Any] | None, final: bool) -> str | None:
    role, blocks = message.get("role"), as_blocks(message.get("content"))
    if before is not None and before.get("role") == role:
        return ('messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row')
    if not blocks and not (final and role == "assistant"):
        return (f"messages.{index}: all messages must have non-empty content except for the optional final "
                "assistant message")
    if any(b.get("type") == "text" and not b.get("text") for b in blocks):
        return "messages: text content blocks must be non-empty"
    if any(b.get("type") == "tool_use" and not isinstance(b.get("input"), dict) for b in blocks):
        return f"messages.{index}: tool_use.input: Input should be a valid dictionary"
    asked = tool_use_ids(before)
    for position, block in enumerate(blocks):
        if block.get("type") == "tool_result" and block.get("tool_use_id") not in asked:
            return (f"messages.{index}.content.{position}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                    "block in the previous message.")
    missing = asked - leading_results(blocks)
    return unanswered(index - 1, missing) if missing else None


def unanswered(index: int, ids: set[str]) -> str:
    return (f"messages.{index}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(sorted(ids))}. Each `tool_use` block must have a corresponding `tool_result` block in "
            "the next message.")


def as_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content or [])


def tool_use_ids(message: dict[str, Any] | None) -> set[str]:
    if message is None or message.get("role") != "assistant":
        return set()
    return {b.get("id") for b in as_blocks(message.get("content")) if b.get("type") == "tool_use"}


def leading_results(blocks: list[dict[str, Any]]) -> set[str]:
    """The ids answered by the tool_result blocks a user turn starts with (they must come first)."""
    answered = set()
    for block in blocks:
        if block.get("type") != "tool_result":
            break
        answered.add(block.get("tool_use_id"))
    return answered


def user_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The text of each user turn that carries the user's words (a turn of tool results only does not)."""
    texts = []
    for message in messages:
        blocks = as_blocks(message.get("content")) if message.get("role") == "user" else []
        said = [b for b in blocks if b.get("type") == "text"]
        if said:
            texts.append(content_text(said))
    return texts


class FakeAnthropic(FakeServer):
    def __init__(self) -> None:
        super().__init__("anthropic")
        self.versions: list[str] = []
        self.app.router.add_post("/v1/messages", self.messages)

    def headers(self) -> dict[str, str]:
        return {"request-id": f"req_{uuid.uuid4().hex[:24]}"}

    def error(self, status: int, retry_after: bool = True, message: str | None = None) -> web.Response:
        body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                           "message": message or f"injected fault {status}"}}
        headers = self.headers()
        if status == 429 and retry_after:
            headers["retry-after"] = "1"
        return web.json_response(body, status=status, headers=headers)

    def hollow(self) -> dict[str, Any]:
        return {"id": "msg_hollow", "type": "message", "content": []}

    async def messages(self, request: web.Request) -> web.StreamResponse:
        # The SDK sends the key as `x-api-key` or (newer releases) as a bearer token.
        if not (request.headers.get("x-api-key") or request.headers.get("Authorization", "").startswith("Bearer ")):
            return self.error(401, message="invalid x-api-key")
        self.versions.append(request.headers.get("anthropic-version", ""))
        body = await request.json()
        if "max_tokens" not in body:
            return self.error(400, message="max_tokens: Field required")
        last = content_text(body["messages"][-1]["content"]) if body.get("messages") else ""
        fault = self.fault_for(body, last)
        problem = request_problem(body)
        if problem is not None:
            return self.error(400, message=problem)
        early = await self.transport_fault(request, fault, self.error)
        if early is not None:
            return early
        text = self.answer_text("fake-anthropic says:", last, user_texts(body["messages"]))
        usage = self.usage(body, text)
        message_id = f"msg_{uuid.uuid4().hex[:24]}"
        tool = wants_tool(body, last)
        if tool is not None:
            return await self.tool_answer(request, body, message_id, tool, usage)
        if body.get("stream"):
            events = self.events(message_id, body["model"], text, usage)
            if fault is not None and fault.kind == "error200":
                events = events[:3] + [sse_event({"type": "error", "error": {"type": "overloaded_error",
                                                                             "message": "Overloaded"}}, "error")]
            return await self.sse(request, fault, events, self.headers())
        if fault is not None and fault.kind == "error200":
            return web.json_response({"type": "error", "error": {"type": "api_error", "message": "Internal"}},
                                     headers=self.headers())
        message = {"id": message_id, "type": "message", "role": "assistant", "model": body["model"],
                   "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": usage}
        return await self.json_answer(request, fault, message, self.headers())

    async def tool_answer(self, request: web.Request, body: dict[str, Any], message_id: str, tool: str,
                          usage: dict[str, Any]) -> web.StreamResponse:
        tool_id = f"toolu_{uuid.uuid4().hex[:20]}"
        if not body.get("stream"):
            return web.json_response({
                "id": message_id, "type": "message", "role": "assistant", "model": body["model"],
                "content": [{"type": "text", "text": "Let me check."},
                            {"type": "tool_use", "id": tool_id, "name": tool, "input": {"city": "Paris"}}],
                "stop_reason": "tool_use", "stop_sequence": None, "usage": usage}, headers=self.headers())
        events = self.events(message_id, body["model"], "Let me check.", usage)
        tool_events = [
            sse_event({"type": "content_block_start", "index": 1, "content_block": {
                "type": "tool_use", "id": tool_id, "name": tool, "input": {}}}, "content_block_start"),
            *(sse_event({"type": "content_block_delta", "index": 1,
                         "delta": {"type": "input_json_delta", "partial_json": piece}}, "content_block_delta")
              for piece in TOOL_ARGUMENT_PIECES),
            sse_event({"type": "content_block_stop", "index": 1}, "content_block_stop"),
            sse_event({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                       "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta"),
        ]
        events = events[:-2] + tool_events + events[-1:]  # replace the text answer's message_delta
        return await self.sse(request, None, events, self.headers())

    @staticmethod
    def usage(body: dict[str, Any], text: str) -> dict[str, Any]:
        system = content_text(body.get("system"))
        cached = words(system)
        prompt = words(" ".join([system, *(content_text(m["content"]) for m in body["messages"])]))
        return {"input_tokens": prompt - cached, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": cached, "output_tokens": words(text)}

    @staticmethod
    def events(message_id: str, model: str, text: str, usage: dict[str, Any]) -> list[bytes]:
        start_usage = {**usage, "output_tokens": 1}
        events = [
            sse_event({"type": "message_start", "message": {
                "id": message_id, "type": "message", "role": "assistant", "content": [], "model": model,
                "stop_reason": None, "stop_sequence": None, "usage": start_usage}}, "message_start"),
            sse_event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                      "content_block_start"),
            sse_event({"type": "ping"}, "ping"),
        ]
        events += [sse_event({"type": "content_block_delta", "index": 0,
                              "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
                    for piece in word_pieces(text)]
        events += [
            sse_event({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse_event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta"),
            sse_event({"type": "message_stop"}, "message_stop"),
        ]
        return events
