"""A local server speaking OpenAI's Chat Completions HTTP API (`POST /v1/chat/completions`), also what
the `local` provider talks to (vLLM, Ollama, llama.cpp servers speak the same protocol).

JSON bodies and SSE chunks of the documented shapes, the usage-only last chunk when
`stream_options.include_usage` is set, `data: [DONE]`, `x-request-id` headers, and the documented error
envelope. Tool messages must answer the tool calls of the assistant message right before them, and
`response_format` must have a documented shape, or the answer is a 400. Faults and the scripted answers:
see `tests.fakes.base`. Token counts are words; the system prompt's words are reported
as cached prompt tokens, so usage mapping is visible in tests.

`keys`: when set, only these bearer keys are accepted (a 401 in the documented shape otherwise); None
(the default) accepts any bearer key.

`down`: while True, every chat request is answered 503 (a provider outage), after being recorded in
`requests`; False (the default) answers as usual.

Moderation, `POST /v1/moderations`: request `{"model", "input"}`, `input` a string or a list of strings
(a missing or other `input` is a 400); the answer `{"id": "modr-...", "model": <the request's, default
omni-moderation-latest>, "results": [...]}` carries one result per input string, each with `flagged`,
`categories`, `category_scores` and `category_applied_input_types` for all 13 omni-moderation
categories (`MODERATION_CATEGORIES`). Its requests are recorded in `moderation_requests` (not in
`requests`, which stays the chat endpoint's), its fault counts in `moderation_seen`. Scripting:

    MODERATE:<category>[:<score>]   anywhere in an input string: that category scores <score> (default
                                    0.99); several markers may appear; an unknown category is a
                                    test error (the fake answers 500)
    every other category            scores 0.001
    a category's boolean            true when its score >= 0.5 (`API_FLAG_AT`); `flagged`: any is true

Faults: an input string (for a list: its last string) starting with `FAULT:` (or `FAULT@<server>:`) asks
for the same faults as a chat message (`<status>`, `429-bare`, `slow:<ms>`, `hang`, `reset`, `malformed`,
`error200`, `hollow` (a result without categories or scores), `cut`, `flaky:<n>:<fault>`).

Speech to text and text to speech, `POST /v1/audio/transcriptions` and `POST /v1/audio/speech`: see
`tests.fakes.openai_audio` (the transcript is read from a RIFF comment chunk the test writes into its WAV).
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from typing import Any, Iterable

from aiohttp import web

from tests.fakes.openai_audio import OpenAIAudio
from tests.fakes.base import (
    TOOL_ARGUMENT_PIECES,
    TOOL_ARGUMENTS,
    FakeServer,
    ServerThread,
    content_text,
    parse_fault,
    sse_event,
    tool_calls_wanted,
    tool_sequence_problem,
    word_pieces,
    words,
)

__all__ = ["FakeOpenAI", "ServerThread"]

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "requests", 500: "server_error", 502: "server_error", 503: "server_error"}

# omni-moderation's 13 categories (wire names) and the input types each applies to, as the API reports them.
MODERATION_CATEGORIES = {
    "harassment": ["text"], "harassment/threatening": ["text"], "hate": ["text"], "hate/threatening": ["text"],
    "illicit": ["text"], "illicit/violent": ["text"], "self-harm": ["text", "image"],
    "self-harm/intent": ["text", "image"], "self-harm/instructions": ["text", "image"],
    "sexual": ["text", "image"], "sexual/minors": ["text"], "violence": ["text", "image"],
    "violence/graphic": ["text", "image"],
}
MODERATION_DEFAULT_MODEL = "omni-moderation-latest"
MODERATE_SCORE = 0.99  # a marked category's score when the marker names none
BACKGROUND_SCORE = 0.001  # every unmarked category's
API_FLAG_AT = 0.5  # the fake API's own boolean per category: score >= this
MODERATE_MARKER = re.compile(r"MODERATE:([a-z/-]+)(?::([0-9]*\.?[0-9]+))?")


def moderation_scores(text: str) -> dict[str, float]:
    """Every category's score for one input string: the `MODERATE:` markers' scores, the rest small."""
    scores = dict.fromkeys(MODERATION_CATEGORIES, BACKGROUND_SCORE)
    for category, score in MODERATE_MARKER.findall(text):
        if category not in MODERATION_CATEGORIES:
            raise ValueError(f"unknown moderation category {category!r}")
        value = float(score) if score else MODERATE_SCORE
        if not 0 <= value <= 1:
            raise ValueError(f"moderation score {value} is not within 0..1")
        scores[category] = value
    return scores


def moderation_result(text: str) -> dict[str, Any]:
    scores = moderation_scores(text)
    categories = {name: score >= API_FLAG_AT for name, score in scores.items()}
    return {"flagged": any(categories.values()), "categories": categories, "category_scores": scores,
            "category_applied_input_types": {name: list(types) for name, types in MODERATION_CATEGORIES.items()}}


def moderation_inputs(value: Any) -> list[str] | None:
    """The input strings of a moderation request, or None when `input` is not a string or a list of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    return None


def response_format_problem(response_format: Any) -> str | None:
    """JSON mode is accepted in its documented shapes (and recorded with the request as sent)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind not in ("text", "json_object", "json_schema"):
        return f"Invalid value for 'response_format.type': {kind!r}"
    name = (response_format.get("json_schema") or {}).get("name") if kind == "json_schema" else "-"
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        return "Missing or invalid 'response_format.json_schema.name'"
    return None


class FakeOpenAI(FakeServer):
    answer_prefix = "fake-openai says:"

    def __init__(self, name: str = "openai", keys: Iterable[str] | None = None) -> None:
        super().__init__(name)
        self.keys: set[str] | None = set(keys) if keys is not None else None
        self.moderation_requests: list[dict[str, Any]] = []
        self.moderation_seen: Counter[str] = Counter()
        self.traceparents: list[str | None] = []  # each chat request's `traceparent` header (None: none)
        self.down = False  # a provider outage: every chat request gets a 503 while set
        self.app.router.add_post("/v1/chat/completions", self.chat_completions)
        self.app.router.add_post("/v1/moderations", self.moderations)
        self.audio_requests: list[dict[str, Any]] = []  # transcription and speech requests (tests.fakes.openai_audio)
        self.audio_seen: Counter[str] = Counter()
        self.audio = OpenAIAudio(self)

    # ---- protocol pieces (Azure overrides some) ---------------------------------------------

    def authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        return self.keys is None or header.removeprefix("Bearer ") in self.keys

    def headers(self) -> dict[str, str]:
        return {"x-request-id": f"req_{uuid.uuid4().hex}"}

    def error(self, status: int, retry_after: bool = True, message: str | None = None) -> web.Response:
        body = {"error": {"message": message or f"injected fault {status}",
                          "type": ERROR_TYPES.get(status, "api_error"), "param": None,
                          "code": "rate_limit_exceeded" if status == 429 else None}}
        headers = self.headers()
        if status == 429 and retry_after:
            headers["retry-after"] = "1"
        return web.json_response(body, status=status, headers=headers)

    def hollow(self) -> dict[str, Any]:
        return {"id": "chatcmpl-hollow", "object": "chat.completion", "choices": [{"index": 0, "message": {}}]}

    def extra_body(self) -> dict[str, Any]:
        return {}

    def extra_choice(self) -> dict[str, Any]:
        return {}

    # ---- the endpoint -----------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        self.traceparents.append(request.headers.get("traceparent"))
        if not self.authorized(request):
            return self.error(401, message="Incorrect API key provided")
        body = await request.json()
        if self.down:
            self.requests.append(body)
            return self.error(503, message="the service is down (test outage)")
        return await self.answer(request, body)

    async def answer(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        messages = body["messages"]
        last = content_text(messages[-1].get("content"))
        fault = self.fault_for(body, last)
        problem = tool_sequence_problem(messages) or response_format_problem(body.get("response_format"))
        if problem is not None:
            return self.error(400, message=problem)
        early = await self.transport_fault(request, fault, self.error)
        if early is not None:
            return early
        if fault is not None and fault.kind == "error200":
            return web.json_response({"error": {"message": "The server had an error while processing your "
                                                "request.", "type": "server_error", "param": None, "code": None}},
                                     headers=self.headers())
        users = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        text = self.answer_text(self.answer_prefix, last, users)
        usage = self.usage(body, text)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        calls = tool_calls_wanted(body, last)
        if calls:
            return await self.tool_answer(request, body, completion_id, calls, usage)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self.sse(request, fault, self.chunks(completion_id, body["model"], text, usage,
                                                              include_usage), self.headers())
        texts = self.choices(last, int(body.get("n") or 1)) or [text] * int(body.get("n") or 1)
        completion = {
            "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": [{"index": i, "message": {"role": "assistant", "content": t, "refusal": None},
                         "logprobs": None, "finish_reason": "stop", **self.extra_choice()} for i, t in enumerate(texts)],
            "usage": usage, "system_fingerprint": "fp_fake", **self.extra_body(),
        }
        return await self.json_answer(request, fault, completion, self.headers())

    async def tool_answer(self, request: web.Request, body: dict[str, Any], completion_id: str,
                          wanted: list[tuple[str, str]], usage: dict[str, Any]) -> web.StreamResponse:
        ids = [f"call_{uuid.uuid4().hex[:12]}" for _ in wanted]
        envelope = {"id": completion_id, "created": int(time.time()), "model": body["model"]}
        if not body.get("stream"):
            calls = [{"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                     for call_id, (name, arguments) in zip(ids, wanted)]
            return web.json_response({
                **envelope, "object": "chat.completion", "usage": usage, **self.extra_body(),
                "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", **self.extra_choice(),
                             "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": calls}}],
            }, headers=self.headers())

        def chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> bytes:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            return sse_event({**envelope, "object": "chat.completion.chunk", "choices": choices, **extra})

        events = [chunk({"role": "assistant", "content": None})]
        for index, (call_id, (name, arguments)) in enumerate(zip(ids, wanted)):
            start = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
            pieces = TOOL_ARGUMENT_PIECES if arguments == TOOL_ARGUMENTS else \
                [arguments[:len(arguments) // 2], arguments[len(arguments) // 2:]]
            events.append(chunk({"tool_calls": [start]}))
            events += [chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}) for piece in pieces]
        events += [chunk({}, "tool_calls"), chunk(None, usage=usage), sse_event("[DONE]")]
        return await self.sse(request, None, events, self.headers())

    def usage(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        prompt = " ".join(content_text(m.get("content")) for m in body["messages"])
        system = " ".join(content_text(m.get("content")) for m in body["messages"] if m["role"] == "system")
        return {"prompt_tokens": words(prompt), "completion_tokens": words(text),
                "total_tokens": words(prompt) + words(text),
                "prompt_tokens_details": {"cached_tokens": words(system), "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}

    def chunks(self, completion_id: str, model: str, text: str, usage: dict[str, Any],
               include_usage: bool) -> list[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            return sse_event({"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                              "model": model, "system_fingerprint": "fp_fake",
                              "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish,
                                           **self.extra_choice()}],
                              **({"usage": None} if include_usage else {})})

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": piece}, None) for piece in word_pieces(text)]
        events.append(chunk({}, "stop"))
        if include_usage:
            events.append(sse_event({"id": completion_id, "object": "chat.completion.chunk",
                                     "created": int(time.time()), "model": model, "choices": [], "usage": usage}))
        events.append(sse_event("[DONE]"))
        return events

    # ---- moderation -------------------------------------------------------------------------

    async def moderations(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self.error(401, message="Incorrect API key provided")
        body = await request.json()
        self.moderation_requests.append(body)
        inputs = moderation_inputs(body.get("input"))
        if inputs is None:
            return self.error(400, message="Invalid value for 'input': expected a string or an array of strings.")
        last = inputs[-1]
        self.moderation_seen[last] += 1
        fault = parse_fault(last, self.moderation_seen[last], self.name)
        model = body.get("model") or MODERATION_DEFAULT_MODEL
        if fault is not None and fault.kind == "hollow":
            return web.json_response({"id": "modr-hollow", "model": model, "results": [{"flagged": False}]},
                                     headers=self.headers())
        early = await self.transport_fault(request, fault, self.error)
        if early is not None:
            return early
        if fault is not None and fault.kind == "error200":
            return web.json_response({"error": {"message": "The server had an error while processing your "
                                                "request.", "type": "server_error", "param": None, "code": None}},
                                     headers=self.headers())
        answer = {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": model,
                  "results": [moderation_result(text) for text in inputs]}
        return await self.json_answer(request, fault, answer, self.headers())
