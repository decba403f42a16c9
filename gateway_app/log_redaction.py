"""Every log record, whoever writes it (the gateway, faust, aiokafka, the provider SDKs), is redacted
before any handler sees it: secrets the worker resolved, and strings shaped like provider keys or bearer
tokens, become `[redacted fp=<fingerprint>]`.

Installed as the log record factory (not a handler filter): faust sets its handlers up after the gateway
starts, and a filter on a logger does not reach records of its child loggers.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from typing import Any

# Key shapes: OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), AWS access keys, bearer tokens, and
# `api_key=...`-like assignments. Deliberately broad: a false positive costs a log line's readability.
KEY_SHAPES = re.compile(
    r"(sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,})"
    r"|(AKIA[0-9A-Z]{16})"
    r"|((?<=Bearer )[A-Za-z0-9._~+/=\-]{16,})"
    r"|((?<=api[_-]key=)[^\s&\"',]{8,})"
    r"|((?<=api[_-]key\": \")[^\"]{8,})",
    re.IGNORECASE,
)
MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


class Redactor:
    """Known secrets (added as the worker resolves them) and key shapes, replaced in text."""

    def __init__(self) -> None:
        self._known: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def remember(self, secret: str) -> None:
        if len(secret) >= MIN_SECRET_CHARS:
            with self._lock:
                self._known = self._known | {secret}

    def redact(self, text: str) -> str:
        for secret in self._known:  # the set is replaced, never changed in place: safe to read
            if secret in text:
                text = text.replace(secret, f"[redacted fp={fingerprint(secret)}]")
        return KEY_SHAPES.sub(lambda m: f"[redacted fp={fingerprint(m.group(0))}]", text)


REDACTOR = Redactor()
_installed = False


def install(redactor: Redactor = REDACTOR) -> None:
    """Make every log record redacted at creation (idempotent)."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to the handler's own error
            return record
        redacted = redactor.redact(message)
        if redacted != message or record.args:
            # An empty tuple, not None: faust's formatter wraps a non-tuple `args` into a tuple.
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redactor.redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
