"""Factories for raw input records: the bytes a producer puts on the input topics."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

import pytest

MESSAGE = {"messageId": "m", "agentId": "a", "roomId": "r", "content": "hi"}
PROFILE = {"agentId": "a", "version": 1, "provider": "echo", "model": "m"}


@pytest.fixture
def raw_factory() -> Callable[[Any], bytes]:
    """Any JSON value as record bytes."""
    return lambda data: json.dumps(data).encode()


def _event_factory(base: dict[str, Any], raw_factory: Callable[[Any], bytes]) -> Callable[..., bytes]:
    def make(drop: Iterable[str] = (), **fields: Any) -> bytes:
        data = {**base, **fields}
        for name in drop:
            del data[name]
        return raw_factory(data)

    return make


@pytest.fixture
def raw_message_factory(raw_factory) -> Callable[..., bytes]:
    """A valid camelCase message-created record with `fields` changed and the `drop` fields left out."""
    return _event_factory(MESSAGE, raw_factory)


@pytest.fixture
def raw_profile_factory(raw_factory) -> Callable[..., bytes]:
    """A valid camelCase profile record (an echo agent) with `fields` changed and the `drop` fields left out."""
    return _event_factory(PROFILE, raw_factory)
