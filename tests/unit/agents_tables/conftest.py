"""Factories for the agents' table rows."""

from __future__ import annotations

from typing import Callable

import pytest

from gateway_app.contract.events import AgentProfile


@pytest.fixture
def profile_factory() -> Callable[..., AgentProfile]:
    """`profile_factory(version, agent_id="a", **fields)`: a valid echo profile."""

    def make(version: int, agent_id: str = "a", **fields) -> AgentProfile:
        return AgentProfile(agent_id=agent_id, version=version, provider="echo", model="echo-1", **fields)

    return make
