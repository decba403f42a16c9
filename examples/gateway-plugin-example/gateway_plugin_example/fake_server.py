"""A fake Parrot Chat API server (see `provider` for the API), for trying the plugin and for its tests.

    python -m gateway_plugin_example.fake_server --port 8089 --api-key parrot-key

It parrots: the reply is the prompt with its words in reverse order, cut to `max_words` (then `stop` is
`limit`). `words_in` counts the words of the system prompt, the history and the prompt. A wrong or
missing key is a 401. A prompt may ask for a fault:

    PARROT:<status>        answer that HTTP status (429 and 503 carry `Retry-After: 1`)
    PARROT:malformed       a 200 whose body is not JSON
    PARROT:slow:<ms>       wait that long before answering
    PARROT:truncate        streamed: half the words, then the stream ends without its end line
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
from typing import Any

from aiohttp import web

DEFAULT_KEY = "parrot-key"


def parrot(prompt: str, max_words: int) -> tuple[list[str], str]:
    """The reply's words and Parrot's stop reason."""
    words = prompt.split()[::-1]
    if len(words) > max_words:
        return words[:max_words], "limit"
    return words, "end"


def words_in(body: dict[str, Any]) -> int:
    texts = [body.get("system") or "", *(m.get("content", "") for m in body.get("history") or []), body["prompt"]]
    return sum(len(str(text).split()) for text in texts)


class FakeParrot:
    def __init__(self, api_key: str = DEFAULT_KEY) -> None:
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []  # every accepted request body, in order
        self._ids = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_post("/v1/reply", self.reply)
        self.app.router.add_post("/v1/reply/stream", self.reply_stream)

    async def _accept(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        """The request's body, or the error response to send instead."""
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return None, _error(401, "invalid API key")
        try:
            body = await request.json()
        except ValueError:
            return None, _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) \
                or not isinstance(body.get("model"), str) or not body["model"] \
                or not isinstance(body.get("max_words"), int) or body["max_words"] < 1:
            return None, _error(400, "needs model, prompt and max_words >= 1")
        self.requests.append(body)
        prompt = body["prompt"]
        if prompt.startswith("PARROT:"):
            fault = prompt[len("PARROT:"):].split()[0] if prompt[len("PARROT:"):].strip() else ""
            if fault.isdigit():
                headers = {"Retry-After": "1"} if fault in ("429", "503") else {}
                return None, _error(int(fault), f"fault {fault} as asked", headers)
            if fault == "malformed":
                return None, web.Response(status=200, body=b'{"id": "parrot-x", "reply": ',
                                          content_type="application/json")
            if fault.startswith("slow:"):
                await asyncio.sleep(int(fault.split(":")[1]) / 1000)
        return body, None

    async def reply(self, request: web.Request) -> web.Response:
        body, refused = await self._accept(request)
        if refused is not None:
            return refused
        words, stop = parrot(body["prompt"], body["max_words"])
        return web.json_response({"id": f"parrot-{next(self._ids)}", "reply": " ".join(words),
                                  "words_in": words_in(body), "words_out": len(words), "stop": stop})

    async def reply_stream(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._accept(request)
        if refused is not None:
            return refused
        words, stop = parrot(body["prompt"], body["max_words"])
        truncate = body["prompt"].startswith("PARROT:truncate")
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for word in words[: len(words) // 2] if truncate else words:
            await response.write(_line({"type": "word", "text": word}))
        if not truncate:
            await response.write(_line({"type": "end", "id": f"parrot-{next(self._ids)}",
                                        "words_in": words_in(body), "words_out": len(words), "stop": stop}))
        await response.write_eof()
        return response


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Parrot Chat API server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--api-key", default=os.environ.get("PARROT_API_KEY") or DEFAULT_KEY)
    args = parser.parse_args(argv)
    server = FakeParrot(args.api_key)
    web.run_app(server.app, host=args.host, port=args.port, access_log=None,
                print=lambda _: print(f"fake Parrot listening on http://{args.host}:{args.port}", flush=True))


if __name__ == "__main__":
    main()
