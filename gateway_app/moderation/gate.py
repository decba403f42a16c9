"""Streamed replies under moderation: no chunk is published past a failed check.

When a profile streams and a check on its replies may do more than flag (mask, regenerate, replace,
block, or the provider's moderation), the answer's pieces are held and released a sentence at a time,
each sentence once it passed the local checks that can judge a sentence alone (word lists, PII; a
masked sentence is released masked). A sentence that fails a stronger check stops the release. The
final chunk waits for the checks on the whole text (the `moderation_out` stage): it ends the stream
normally, or with `blocked: true` when the reply is blocked or replaced. Without such checks a stream
is published as it comes, as before.

Latency: a streamed piece waits until its sentence ends (one sentence of text), and the final chunk
waits for the whole-text checks (local checks: about a millisecond; provider moderation: its round trip).
"""

from __future__ import annotations

import re
from typing import Callable

from gateway_app.contract.events import MessageCreated
from gateway_app.pipeline.chunks import ChunkPipe
from gateway_app.publisher import Publisher

SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]}]*\s+|\n\s*")
STRONG = frozenset({"mask", "regenerate", "replace", "block"})
SENTENCE_CHECKS = ("wordlist", "pii")

# A sentence -> the text to release (itself, or masked), or None to stop releasing.
SentenceCheck = Callable[[str], str | None]


def split_released(text: str) -> tuple[str, str]:
    """(whole sentences, the rest that has no sentence end yet)."""
    last = None
    for match in SENTENCE_END.finditer(text):
        last = match
    if last is None:
        return "", text
    return text[: last.end()], text[last.end():]


class HeldPipe(ChunkPipe):
    """A chunk pipe that releases whole sentences that passed, and holds the final chunk for `finish`."""

    def __init__(self, publisher: Publisher, message: MessageCreated, check: SentenceCheck) -> None:
        super().__init__(publisher, message)
        self.check = check
        self.pending: dict[int, str] = {}
        self.next_seq: dict[int, int] = {}
        self.stopped: set[int] = set()
        self.ended: int | None = None  # the attempt whose stream reached its end (its final chunk is held)
        self.closed = False

    def put(self, attempt: int, seq: int, delta: str, final: bool, blocked: bool = False) -> None:
        if final:
            self.ended = attempt
            return
        if attempt in self.stopped:
            return
        released, rest = split_released(self.pending.get(attempt, "") + delta)
        self.pending[attempt] = rest
        if released:
            self._release(attempt, released)

    def _release(self, attempt: int, text: str) -> None:
        checked = self.check(text)
        if checked is None:
            self.stopped.add(attempt)
            return
        self._emit(attempt, checked, final=False)

    def _emit(self, attempt: int, text: str, *, final: bool, blocked: bool = False) -> None:
        seq = self.next_seq.get(attempt, 0)
        super().put(attempt, seq, text, final, blocked)
        self.next_seq[attempt] = seq + 1

    async def finish(self, *, blocked: bool) -> None:
        """The whole text was judged: release the rest and end the stream (blocked: with a final chunk
        that says so), then wait until every chunk is handed to the producer."""
        attempt = self.ended
        if attempt is not None:
            rest = self.pending.pop(attempt, "")
            if rest and not blocked and attempt not in self.stopped:
                self._release(attempt, rest)
            self._emit(attempt, "", final=True, blocked=blocked or attempt in self.stopped)
        await self.abandon()

    async def abandon(self) -> None:
        """No final chunk (the answer was superseded or failed): what was released goes out."""
        if not self.closed:
            self.closed = True
            await self.close()


def needs_holding(actions: set[str], provider_on_output: bool) -> bool:
    return bool(actions & STRONG) or provider_on_output
