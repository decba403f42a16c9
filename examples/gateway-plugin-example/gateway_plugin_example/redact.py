"""`redact-emails`: a post-call stage that hides e-mail addresses in the answer.

Profile options: `replacement` (text, default `[email redacted]`), checked at intake.

    "stages": [{"name": "redact-emails", "options": {"replacement": "[hidden]"}}]

It returns `Modify` with the redacted text when it found an address, `Pass` otherwise. It is `closed`:
if it fails (raises or passes its one-second limit) the message fails rather than going out unredacted.
With `"stream": true` the chunks carry the provider's raw text; only the final reply is redacted.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Mapping

from gateway_app.plugins import Modify, Pass, StageInput

DEFAULT_REPLACEMENT = "[email redacted]"
MAX_REPLACEMENT_CHARS = 100
# Pragmatic, not RFC 5322: local part, @, a domain with at least one dot and a letters-only top level.
# Every repetition is bounded (the RFC's own limits), so a long answer cannot make the search quadratic.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,63}")
# Longer answers are searched in a thread: a stage must not hold the event loop (the worker's other
# messages) while it works.
IN_THREAD_CHARS = 20_000


class RedactEmails:
    name = "redact-emails"
    position = "post_call"
    time_limit_seconds = 1.0
    failure_mode = "closed"

    def validate_options(self, options: Mapping[str, Any]) -> None:
        unknown = set(options) - {"replacement"}
        if unknown:
            raise ValueError(f"unknown options: {', '.join(sorted(unknown))} (known: replacement)")
        replacement = options.get("replacement", DEFAULT_REPLACEMENT)
        if not isinstance(replacement, str):
            raise ValueError(f"replacement must be text, not {type(replacement).__name__}")
        if len(replacement) > MAX_REPLACEMENT_CHARS:
            raise ValueError(f"replacement is longer than {MAX_REPLACEMENT_CHARS} characters")
        if EMAIL.search(replacement):
            raise ValueError("replacement must not itself be an e-mail address")

    async def run(self, stage_input: StageInput) -> Modify | Pass:
        if stage_input.result is None:
            return Pass()
        text = stage_input.result.text
        if "@" not in text:
            return Pass()
        replacement = stage_input.options.get("replacement", DEFAULT_REPLACEMENT)
        if len(text) > IN_THREAD_CHARS:
            redacted, count = await asyncio.to_thread(redact, text, replacement)
        else:
            redacted, count = redact(text, replacement)
        if not count:
            return Pass()
        return Modify(redacted, reason=f"{count} e-mail address{'es' if count > 1 else ''} redacted")


def redact(text: str, replacement: str) -> tuple[str, int]:
    """The text with every address replaced, and how many there were."""
    # A function, not a template: a backslash in the replacement is taken literally.
    return EMAIL.subn(lambda _: replacement, text)
