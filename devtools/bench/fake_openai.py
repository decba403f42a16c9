"""A minimal, fast OpenAI-compatible chat-completions server for the peers section: the one provider that
both the gateway (`openai` provider, `OPENAI_BASE_URL`) and the LiteLLM proxy (`api_base`) call.

    python -m devtools.bench.fake_openai PORT

`POST /v1/chat/completions` answers one fixed short completion with `usage` (as an SSE stream with the
usage-only last chunk when the request asks for `stream`), except that a request offering the gateway's
`consult_agent` tool whose last message is `CONSULT:<agent_id>:<question>` gets a call of that tool (the
collaboration section); `GET /counts` answers `{"requests": n}`. It
does nothing else: not the tests' fake (`tests/fakes/openai_server.py`, which records every request and
scripts faults), which devtools does not import. It runs in a process of its own so its CPU is neither the
bench's (whose collector times replies) nor a measured process's.
"""

from __future__ import annotations

import json
import sys
import time

from devtools.bench.server_process import ServerProcess

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


def _consult(model: str, agent_id: str, question: str) -> bytes:
    call = {"id": f"call_{time.monotonic_ns()}", "type": "function",
            "function": {"name": "consult_agent", "arguments": json.dumps({"agent_id": agent_id, "question": question})}}
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                     "finish_reason": "tool_calls"}],
        "usage": USAGE}).encode()


def _consult_asked(body: dict) -> tuple[str, str] | None:
    offered = any(t.get("function", {}).get("name") == "consult_agent" for t in body.get("tools") or [])
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content")
    if not offered or last.get("role") != "user" or not isinstance(content, str) or not content.startswith("CONSULT:"):
        return None
    agent_id, _, question = content[len("CONSULT:"):].partition(":")
    return agent_id, question


def serve(port: int) -> None:
    from aiohttp import web

    counts = {"requests": 0}

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        counts["requests"] += 1
        model = body.get("model", "gpt-4o-mini")
        asked = _consult_asked(body)
        if asked is not None:
            return web.Response(body=_consult(model, *asked), content_type="application/json",
                                headers={"x-request-id": "req-bench"})
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


class FakeOpenAI(ServerProcess):
    """The server as a subprocess on a free local port."""

    def __init__(self) -> None:
        super().__init__("devtools.bench.fake_openai", "fake OpenAI server")
        self.url = self.base + "/v1"

    def requests(self) -> int | None:
        counts = self.get_counts()
        return None if counts is None else counts["requests"]


if __name__ == "__main__":
    serve(int(sys.argv[1]))
