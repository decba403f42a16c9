"""A local server speaking OpenAI's Chat Completions HTTP API (`POST /v1/chat/completions`).

Good enough for the official SDK: JSON bodies of the documented shape, `x-request-id` headers, and the
documented error envelope. A fault is asked for per request by starting the last user message with
`FAULT:<status>` (e.g. `FAULT:429`); `FAULT:slow:<ms>` delays the answer; `FAULT:flaky:<n>:<status>`
fails the first n requests carrying that exact message, then answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from aiohttp import web

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_api_key", 404: "not_found_error",
               429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}


def _error(status: int, message: str) -> web.Response:
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "api_error"), "param": None,
                      "code": None}}
    headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
    if status == 429:
        headers["retry-after"] = "1"
    return web.json_response(body, status=status, headers=headers)


def _words(text: str) -> int:
    return len(text.split())


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.seen: dict[str, int] = {}
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        self.app = app

    async def chat_completions(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _error(401, "missing API key")
        body = await request.json()
        self.requests.append(body)
        last = body["messages"][-1]["content"]
        self.seen[last] = self.seen.get(last, 0) + 1
        if last.startswith("FAULT:slow:"):
            await asyncio.sleep(int(last.split(":")[2]) / 1000)
        elif last.startswith("FAULT:flaky:"):
            _, _, times, status = last.split(":")[:4]
            if self.seen[last] <= int(times):
                return _error(int(status), f"injected flaky fault {self.seen[last]}/{times}")
        elif last.startswith("FAULT:"):
            return _error(int(last.split(":")[1]), f"injected fault {last}")
        prompt = " ".join(m["content"] for m in body["messages"])
        answer = f"fake-openai says: {last}"
        completion = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": _words(prompt), "completion_tokens": _words(answer),
                      "total_tokens": _words(prompt) + _words(answer)},
            "system_fingerprint": "fp_fake",
        }
        return web.json_response(completion, headers={"x-request-id": f"req_{uuid.uuid4().hex}"})


class ServerThread:
    """Runs an aiohttp app on 127.0.0.1 in a thread with its own loop (usable from sync fixtures)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> "ServerThread":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
