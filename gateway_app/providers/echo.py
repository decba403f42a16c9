"""`echo`: the embedded default. Needs no key, answers with the message, costs nothing.

Tokens are counted deterministically (whitespace-separated words) so tests and billing replays agree.
A profile may set `options.latency_ms` to simulate a slow provider for tests and benchmarks; streamed,
the answer comes word by word.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from gateway_app.providers.base import ChatRequest, ChatResult, StreamEvent, TextDelta, TokenUsage


def count_tokens(text: str) -> int:
    return len(text.split())


class EchoProvider:
    name = "echo"

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    def endpoint(self, request: ChatRequest) -> str:
        return "embedded"

    async def complete(self, request: ChatRequest) -> ChatResult:
        latency_ms = float(request.options.get("latency_ms", 0) or 0)
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        text = request.messages[-1].content
        words = text.split()
        finish = "stop"
        if len(words) > request.max_tokens:  # behave like a real model hitting max_tokens
            words, text, finish = words[: request.max_tokens], " ".join(words[: request.max_tokens]), "length"
        prompt = " ".join([request.system_prompt, *(m.content for m in request.messages)])
        usage = TokenUsage(input_tokens=count_tokens(prompt), output_tokens=len(words))
        return ChatResult(text=text, finish_reason=finish, usage=usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        result = await self.complete(request)
        for index, word in enumerate(result.text.split(" ")):
            yield TextDelta(word if index == 0 else f" {word}")
        yield result

    async def aclose(self) -> None:
        return None
