"""Loading providers: lazily, in a thread, once per name; a failed load is an error reply and is retried."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers import registry
from gateway_app.providers.base import ProviderError
from gateway_app.providers.registry import ProviderPool, is_known

WORKING = """
    import time
    from pathlib import Path

    time.sleep(0.2)  # a slow import, so concurrent first calls overlap

    class Plugged:
        name = "plugged"

        def __init__(self, timeout=60.0):
            self.timeout = timeout
            with open(Path(__file__).with_suffix(".log"), "a") as log:
                log.write("built\\n")

        async def aclose(self):
            pass
"""
BROKEN = "raise ImportError('needs a package that is not installed')\n"


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch, request):
    """A provider module of our own (its name unique per test), registered as `plugged`."""
    module = f"plugged_provider_{request.node.name.replace('[', '_').replace(']', '_')}"
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # the source is rewritten within the same second
    monkeypatch.setitem(registry.PROVIDERS, "plugged", f"{module}:Plugged")
    yield tmp_path / f"{module}.py"
    sys.modules.pop(module, None)


def write(path: Path, source: str) -> None:
    path.write_text(textwrap.dedent(source))


def builds(path: Path) -> int:
    log = path.with_suffix(".log")
    return len(log.read_text().splitlines()) if log.exists() else 0


async def test_a_failed_load_is_an_error_reply_and_is_tried_again(plugin):
    write(plugin, BROKEN)
    pool = ProviderPool(timeout=7)
    with pytest.raises(ProviderError) as caught:
        await pool.load("plugged")
    error = caught.value
    assert error.code == ErrorCode.PROVIDER_NOT_CONFIGURED and not error.retriable
    assert "'plugged'" in str(error) and "ImportError" in str(error) and "not installed" in str(error)
    write(plugin, WORKING)  # fixed (say, the package installed) while the worker runs
    provider = await pool.load("plugged")
    assert provider.name == "plugged" and provider.timeout == 7
    assert await pool.load("plugged") is provider and pool.get("plugged") is provider and builds(plugin) == 1
    await pool.aclose()


async def test_concurrent_first_loads_share_one_import(plugin):
    write(plugin, WORKING)
    pool = ProviderPool()
    providers = await asyncio.gather(*(pool.load("plugged") for _ in range(5)))
    assert all(p is providers[0] for p in providers) and builds(plugin) == 1
    await pool.aclose()


async def test_concurrent_loads_share_one_failure_and_the_next_call_tries_again(plugin):
    write(plugin, BROKEN)
    pool = ProviderPool()
    outcomes = await asyncio.gather(*(pool.load("plugged") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(o, ProviderError) and o.code == ErrorCode.PROVIDER_NOT_CONFIGURED for o in outcomes)
    write(plugin, WORKING)
    assert (await pool.load("plugged")).name == "plugged"
    await pool.aclose()


async def test_a_missing_class_or_unknown_name_is_not_configured(monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "typo", "gateway_app.providers.echo:NoSuchProvider")
    pool = ProviderPool()
    with pytest.raises(ProviderError) as caught:
        await pool.load("typo")
    assert caught.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED and "AttributeError" in str(caught.value)
    with pytest.raises(ProviderError) as caught:
        pool.get("nobody")
    assert caught.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED and "'nobody'" in str(caught.value)


def test_registry_creates_each_provider_once():
    pool = ProviderPool()
    assert pool.get("echo") is pool.get("echo")
    assert is_known("openai") and not is_known("gpt")
