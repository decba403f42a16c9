"""What every fake provider server shares: a per-request fault language, scripted answers, the rule
tool messages follow, token counting, and running an aiohttp app on 127.0.0.1 in a thread.

A request asks for a fault when its last message starts with `FAULT:`:

    FAULT:<status>            answer that HTTP error (429 carries `retry-after: 1`)
    FAULT:429-bare            429 without any Retry-After header
    FAULT:slow:<ms>           wait before the response headers (slow first byte), then answer
    FAULT:hang                never answer (the caller's timeout must fire)
    FAULT:reset               drop the connection without a response
    FAULT:malformed           200 whose body is not JSON
    FAULT:error200            200 whose body is the provider's error object
    FAULT:hollow              200 with a JSON body of the right type but without text, finish reason, usage
    FAULT:cut                 drop the connection halfway through the body / stream
    FAULT:truncate            end the stream cleanly halfway, without its terminal event
    FAULT:flaky:<n>:<fault>   <fault> for the first n requests carrying this exact message, then answer

"The last message" is the text of the request's last message whatever its wire form: a user or a tool
message's content, or the text of an Anthropic user turn's `tool_result` and text blocks joined with " ".

A request with tools whose last message starts with `TOOL:` is answered with a call of its first tool
with the arguments `TOOL_ARGUMENTS` (streamed: the arguments in two pieces). A tool result saying
`TOOL:` asks for another call, as a model may ask for more tools.

A request offering the gateway's `consult_agent` tool whose last message is `CONSULT:<agent_id>:<question>`
is answered with a call of `consult_agent` asking that agent that question (the OpenAI fake); several
`CONSULT:` parts joined by `&&` ask several agents in one answer.

`FAULT@<server>:<fault>` applies only on the server of that name (e.g. `FAULT@openai:503`) and is
answered normally by the others: a fallback behind a failing provider can then answer the same message.

Otherwise the answer text is `<server's prefix> <last message>`, unless the request's FIRST user message
starts with `REPLY:` (plain or streamed alike; usage is counted the same way):

    REPLY:<text>              answer exactly <text>
    REPLY:<a>||<b>            answer <a> when the request has exactly one user message, <b> when it has
                              more (a JSON repair appends the bad answer and a user message saying what
                              is wrong: the repair call gets <b>)

User messages are the ones carrying the user's words: an Anthropic user turn made only of tool results
is not one.

Each fake refuses, with a 400 in its provider's error shape, the tool-call sequences its real API
refuses (see `tool_sequence_problem` and the Anthropic fake).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

HANG_SECONDS = 3600
TOOL_ARGUMENTS = '{"city": "Paris"}'
TOOL_ARGUMENT_PIECES = ['{"city": ', '"Paris"}']


def wants_tool(body: dict[str, Any], last: str) -> str | None:
    """The name of the tool to call, when the request asks for a tool call."""
    tools = body.get("tools") or []
    if not tools or not last.startswith("TOOL:"):
        return None
    first = tools[0]
    return first.get("function", first)["name"]


def tool_calls_wanted(body: dict[str, Any], last: str) -> list[tuple[str, str]]:
    """The (name, arguments) of each tool call the request asks for: `CONSULT:` calls of consult_agent,
    else `TOOL:`'s call of the first tool with `TOOL_ARGUMENTS`; none otherwise."""
    offered = {t.get("function", t)["name"] for t in body.get("tools") or []}
    if last.startswith("CONSULT:") and "consult_agent" in offered:
        calls = []
        for part in last.split("&&"):
            agent_id, _, question = part.strip()[len("CONSULT:"):].partition(":")
            calls.append(("consult_agent", json.dumps({"agent_id": agent_id, "question": question})))
        return calls
    tool = wants_tool(body, last)
    return [(tool, TOOL_ARGUMENTS)] if tool is not None else []


def content_text(content: Any) -> str:
    """The text of a message's (or a block's) content in any wire form: a string, null, or a list of
    blocks (text blocks, tool results whose content is text or blocks), joined with " "."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif isinstance(block, dict) and block.get("type") == "tool_result":
            parts.append(content_text(block.get("content")))
    return " ".join(part for part in parts if part)


def scripted_reply(user_texts: list[str]) -> str | None:
    """The `REPLY:` answer the request's user messages ask for, or None."""
    if not user_texts or not user_texts[0].startswith("REPLY:"):
        return None
    first, split, more = user_texts[0][len("REPLY:"):].partition("||")
    if not split:
        return first
    return first if len(user_texts) == 1 else more


def tool_sequence_problem(messages: list[dict[str, Any]]) -> str | None:
    """Chat Completions' (and Chat v2's) rule: tool messages directly follow the assistant message whose
    `tool_calls` they answer, one per call id, before any other message. None when the messages keep it."""
    asked: set[str] = set()   # the call ids of the nearest assistant message, while tool messages follow it
    waiting: set[str] = set()  # of those, the ones not answered yet
    for index, message in enumerate(messages):
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in asked:
                return (f"messages.[{index}]: a message with role 'tool' must be a response to a preceding "
                        f"message with 'tool_calls' (unknown tool_call_id {message.get('tool_call_id')!r})")
            waiting.discard(message["tool_call_id"])
            continue
        if waiting:
            return unanswered(waiting)
        calls = (message.get("tool_calls") or []) if message.get("role") == "assistant" else []
        asked = {call.get("id") for call in calls}
        waiting = set(asked)
    return unanswered(waiting) if waiting else None


def unanswered(ids: set[str]) -> str:
    return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(sorted(ids))}")


@dataclass(frozen=True)
class Fault:
    kind: str          # status | slow | hang | reset | malformed | error200 | cut | truncate
    status: int = 0
    ms: int = 0
    retry_after: bool = True


def parse_fault(content: str, seen: int, server: str = "") -> Fault | None:
    """The fault this request asks for; `seen` is how many requests carried this content so far (1-based)."""
    if content.startswith("FAULT@"):
        target, _, rest = content[len("FAULT@"):].partition(":")
        return parse_fault(f"FAULT:{rest}", seen) if target == server else None
    if not content.startswith("FAULT:"):
        return None
    spec = content[len("FAULT:"):].split()[0] if content[len("FAULT:"):].strip() else ""
    if spec.startswith("flaky:"):
        _, times, rest = spec.split(":", 2)
        return parse_fault(f"FAULT:{rest}", seen) if seen <= int(times) else None
    if spec.startswith("slow:"):
        return Fault("slow", ms=int(spec.split(":")[1]))
    if spec == "429-bare":
        return Fault("status", status=429, retry_after=False)
    if spec.isdigit():
        return Fault("status", status=int(spec))
    if spec in ("hang", "reset", "malformed", "error200", "hollow", "cut", "truncate"):
        return Fault(spec)
    raise ValueError(f"unknown fault {spec!r}")


def words(text: str) -> int:
    return len(text.split())


def word_pieces(text: str) -> list[str]:
    """The answer as stream deltas: word by word, spaces kept, so the pieces join to the text."""
    parts = text.split(" ")
    return [parts[0], *(f" {p}" for p in parts[1:])]


class FakeServer:
    """Base of the protocol fakes: bookkeeping plus the faults that look the same on every protocol."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # wall-clock time of each request, as a provider counting a cap sees it
        self.seen: Counter[str] = Counter()
        self.app = web.Application()

    def fault_for(self, body: dict[str, Any], last_user: str) -> Fault | None:
        self.requests.append(body)
        self.arrivals.append(time.time())
        self.seen[last_user] += 1
        return parse_fault(last_user, self.seen[last_user], self.name)

    def answer_text(self, prefix: str, last: str, user_texts: list[str]) -> str:
        """What the fake model says: the scripted `REPLY:`, the next of `CHOICES:`, else the prefix and the
        last message."""
        scripted = scripted_reply(user_texts)
        if scripted is not None:
            return scripted
        choices = self.choices(last)
        return choices[0] if choices else f"{prefix} {last}"

    def choices(self, last: str, n: int = 1) -> list[str]:
        """`CHOICES:<a>##<b>##<c>`: the k-th request with this message answers part k (cycling), and a
        request for n answers gets the n parts from there; [] for any other message."""
        if not last.startswith("CHOICES:"):
            return []
        parts = last[len("CHOICES:"):].split("##")
        start = self.seen[last] - 1
        return [parts[(start + i) % len(parts)] for i in range(n)]

    def per_window(self, seconds: float) -> dict[int, int]:
        """Requests per tumbling wall-clock window of `seconds` (numbered as the gateway numbers them)."""
        return dict(sorted(Counter(int(t // seconds) for t in self.arrivals).items()))

    def count(self, prefix: str) -> int:
        """Requests whose last message started with `prefix`."""
        return sum(n for content, n in self.seen.items() if content.startswith(prefix))

    async def transport_fault(self, request: web.Request, fault: Fault | None,
                              error: Callable[[int, bool], web.Response]) -> web.StreamResponse | None:
        """Handle the faults that happen before an answer exists; None means: go on and answer."""
        if fault is None:
            return None
        if fault.kind == "slow":
            await asyncio.sleep(fault.ms / 1000)
            return None
        if fault.kind == "hang":
            await asyncio.sleep(HANG_SECONDS)
        if fault.kind == "reset":
            return drop(request)
        if fault.kind == "status":
            return error(fault.status, fault.retry_after)
        if fault.kind == "malformed":
            return web.Response(status=200, body=b'{"id": "x", "choices": [', content_type="application/json")
        if fault.kind == "hollow":
            return web.json_response(self.hollow())
        return None  # error200 / cut / truncate: the protocol module handles them

    def hollow(self) -> dict[str, Any]:
        """A 200 body of the answer's type with nothing we rely on in it (each protocol says which)."""
        return {"id": "hollow"}

    async def json_answer(self, request: web.Request, fault: Fault | None, body: dict[str, Any],
                          headers: dict[str, str]) -> web.StreamResponse:
        raw = json.dumps(body).encode()
        if fault is not None and fault.kind == "cut":
            response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "application/json",
                                                                "Content-Length": str(len(raw))})
            await response.prepare(request)
            await response.write(raw[: len(raw) // 2])
            drop(request)
            return response
        return web.Response(body=raw, headers=headers, content_type="application/json")

    async def sse(self, request: web.Request, fault: Fault | None, events: list[bytes],
                  headers: dict[str, str]) -> web.StreamResponse:
        """Send server-sent events; `cut` drops the connection halfway, `truncate` ends cleanly halfway."""
        response = web.StreamResponse(status=200, headers={**headers, "Content-Type": "text/event-stream",
                                                            "Cache-Control": "no-cache"})
        await response.prepare(request)
        stop_at = len(events) // 2 if fault is not None and fault.kind in ("cut", "truncate") else len(events)
        for event in events[:stop_at]:
            await response.write(event)
        if fault is not None and fault.kind == "cut":
            drop(request)
            return response
        await response.write_eof()
        return response


def drop(request: web.Request) -> web.Response:
    """Close the connection under the handler: the client sees a reset / an incomplete body."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


def sse_event(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


class ServerThread:
    """Runs an aiohttp app on 127.0.0.1 in a thread with its own loop (usable from sync fixtures)."""

    def __init__(self, app: web.Application, path: str = "") -> None:
        self.app = app
        self.path = path
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        # Cancel handlers whose client went away (a hung request after the caller's timeout).
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
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
        return f"http://127.0.0.1:{self.port}{self.path}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
