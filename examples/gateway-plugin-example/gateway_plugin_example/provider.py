"""`parrot`: a provider for the (made-up) Parrot Chat API, as an AI gateway provider plugin.

The Parrot Chat API:

    POST {base}/v1/reply                 Authorization: Bearer <key>
    {"model": "parrot-1", "system": "be brief", "prompt": "the last user message",
     "history": [{"role": "user" | "assistant", "content": "..."}], "max_words": 64}

    200 {"id": "parrot-7", "reply": "...", "words_in": 9, "words_out": 4, "stop": "end" | "limit"}
    4xx/5xx {"error": "what went wrong"}   (429 and 503 may carry Retry-After)

    POST {base}/v1/reply/stream          (same body) -> 200, one JSON object a line (NDJSON):
    {"type": "word", "text": "..."}                                    one per word, in order
    {"type": "end", "id": ..., "words_in": ..., "words_out": ..., "stop": ...}   the last line
    {"type": "error", "message": "..."}                                the stream broke off

Configuration (read once, when the gateway constructs the provider): `PARROT_BASE_URL` and
`PARROT_API_KEY`, both required. A missing one is `ProviderNotConfigured` in the call that needs it, so
the worker starts without them. Tokens are Parrot's words (`words_in`, `words_out`). Parrot has no
tools, stop sequences or temperature: they are not sent.

Every failure leaves this module as a `ProviderError` made by `gateway_app.providers.errors`, so the
gateway retries, opens breakers and falls back for parrot exactly as for its built-in providers.
"""

from __future__ import annotations

import json
import os
from typing import Any, AsyncIterator, Mapping

import httpx

from gateway_app.providers import errors
from gateway_app.providers.base import (
    ChatRequest,
    ChatResult,
    ProviderError,
    ProviderNotConfigured,
    StreamEvent,
    TextDelta,
    TokenUsage,
)

FINISH = {"end": "stop", "limit": "length"}  # Parrot's `stop` -> the gateway's finish reasons


def to_body(request: ChatRequest) -> dict[str, Any]:
    *history, last = request.messages or (None,)
    return {
        "model": request.model,
        "system": request.system_prompt,
        "prompt": last.content if last is not None else "",
        "history": [{"role": m.role, "content": m.content} for m in history],
        "max_words": request.max_tokens,
    }


def _count(data: Mapping[str, Any], field: str) -> int:
    value = data.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise errors.bad_response(f"{field} is {value!r}, not a count")
    return value


def _finish(data: Mapping[str, Any]) -> str:
    stop = data.get("stop")
    if stop not in FINISH:
        raise errors.bad_response(f"stop is {stop!r}, not one of {', '.join(FINISH)}")
    return FINISH[stop]


def to_result(data: Any, text: str | None = None) -> ChatResult:
    """A reply body (or a stream's end line, whose text came as words) as a result; checks every field."""
    if not isinstance(data, dict):
        raise errors.bad_response(f"the body is {type(data).__name__}, not an object")
    if text is None:
        text = data.get("reply")
        if not isinstance(text, str):
            raise errors.bad_response("no reply text")
    request_id = data.get("id")
    if not isinstance(request_id, str) or not request_id:
        raise errors.bad_response("no id")
    usage = TokenUsage(input_tokens=_count(data, "words_in"), output_tokens=_count(data, "words_out"))
    return ChatResult(text=text, finish_reason=_finish(data), usage=usage, request_id=request_id)


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("error", body) if isinstance(body, dict) else body)[:300]


def _status_error(response: httpx.Response) -> ProviderError:
    if response.status_code >= 400:
        return errors.from_status(response.status_code, _error_message(response), response.headers)
    # httpx follows no redirects: a 1xx/3xx is not an answer either
    return errors.bad_response(f"HTTP {response.status_code}: {response.text[:200]}")


class ParrotProvider:
    name = "parrot"

    def __init__(self, timeout: float = 60.0, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.timeout = timeout
        self._base_url = (env.get("PARROT_BASE_URL") or "").strip().rstrip("/")
        self._api_key = (env.get("PARROT_API_KEY") or "").strip()
        self._client: httpx.AsyncClient | None = None  # built on first use, inside the event loop

    def __repr__(self) -> str:  # never the key
        return f"ParrotProvider(base_url={self._base_url!r})"

    def endpoint(self, request: ChatRequest) -> str:
        if not self._base_url:
            raise ProviderNotConfigured("PARROT_BASE_URL is not set")
        if not self._api_key:
            raise ProviderNotConfigured("PARROT_API_KEY is not set")
        return self._base_url

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    def _post_args(self, request: ChatRequest, path: str) -> dict[str, Any]:
        return {"url": self.endpoint(request) + path, "json": to_body(request),
                "headers": {"Authorization": f"Bearer {self._api_key}"}}

    async def complete(self, request: ChatRequest) -> ChatResult:
        args = self._post_args(request, "/v1/reply")
        try:
            response = await self._http().post(**args)
        except httpx.TimeoutException as exc:
            raise errors.timed_out() from exc
        except httpx.TransportError as exc:  # refused, reset, a body cut off halfway
            raise errors.connection_failed(exc) from exc
        if not response.is_success:
            raise _status_error(response)
        try:
            data = response.json()
        except ValueError as exc:
            raise errors.bad_response(f"not JSON: {exc}") from exc
        return to_result(data)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        args = self._post_args(request, "/v1/reply/stream")
        words: list[str] = []
        started = False  # the answer began: a transport failure now broke the stream
        try:
            async with self._http().stream("POST", **args) as response:
                if not response.is_success:
                    await response.aread()
                    raise _status_error(response)
                started = True
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    event = _event(line)
                    if event.get("type") == "word":
                        text = event.get("text")
                        if not isinstance(text, str):
                            raise errors.stream_interrupted("a word event without text")
                        delta = text if not words else f" {text}"
                        words.append(text)
                        yield TextDelta(delta)
                    elif event.get("type") == "end":
                        result = to_result(event, text=" ".join(words))
                        break
                    elif event.get("type") == "error":
                        raise errors.stream_interrupted(str(event.get("message", "error event"))[:200])
                else:
                    raise errors.stream_interrupted("the stream ended without its end line")
        except ProviderError:
            raise
        except httpx.TimeoutException as exc:  # slow to answer, or silent mid-stream: a timeout either way
            raise errors.timed_out() from exc
        except httpx.TransportError as exc:
            if started:
                raise errors.stream_interrupted(f"{type(exc).__name__}: {exc}") from exc
            raise errors.connection_failed(exc) from exc
        yield result

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        raise errors.stream_interrupted(f"a line that is not JSON: {line[:100]!r}") from None
    if not isinstance(event, dict):
        raise errors.stream_interrupted(f"a line that is not an object: {line[:100]!r}")
    return event
