"""A minimal, fast OpenAI-compatible chat-completions server for the peers section: the one provider that
both the gateway (`openai` provider, `OPENAI_BASE_URL`) and the LiteLLM proxy (`api_base`) call.

    python -m devtools.bench.fake_openai PORT

`POST /v1/chat/completions` answers one fixed short completion with `usage` (as an SSE stream with the
usage-only last chunk when the request asks for `stream`); `GET /counts` answers `{"requests": n}`. It
does nothing else: not the tests' fake (`tests/fakes/openai_server.py`, which records every request and
scripts faults), which devtools does not import. It runs in a process of its own so its CPU is neither the
bench's (whose collector times replies) nor a measured process's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from devtools.kafka_local import free_port
from devtools.workers import REPO

TEXT = "Orders placed today reach Lisbon in two to three working days."
USAGE = {"prompt_tokens": 24, "completion_tokens": 12, "total_tokens": 36}


def _completion(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
        "usage": USAGE}).encode()


def _chunks(model: str) -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": TEXT}}]},
              {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
              {**base, "choices": [], "usage": USAGE}]
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def serve(port: int) -> None:
    from aiohttp import web

    counts = {"requests": 0}

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        counts["requests"] += 1
        model = body.get("model", "gpt-4o-mini")
        if body.get("stream"):
            return web.Response(body=_chunks(model), content_type="text/event-stream",
                                headers={"x-request-id": "req-bench"})
        return web.Response(body=_completion(model), content_type="application/json",
                            headers={"x-request-id": "req-bench"})

    async def get_counts(_: web.Request) -> web.Response:
        return web.json_response(counts)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)  # clients configured without the /v1 suffix
    app.router.add_get("/counts", get_counts)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class FakeOpenAI:
    """The server as a subprocess on a free local port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.bench.fake_openai", str(self.port)],
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.requests() is None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.1)

    def requests(self) -> int | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/counts", timeout=5) as response:
                return json.loads(response.read())["requests"]
        except OSError:
            return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
