"""`CredentialResolver`: env, file and enc references, stores not configured, the cache and its TTL."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.keyring import Keyring, generate_key
from gateway_app.credentials.refs import CredentialRef
from gateway_app.credentials.resolver import CredentialResolver
from gateway_app.credentials.secret import Secret
from gateway_app.settings import Settings

KEY = "sk-proj-Zx81mQp0aLw2Rt5vYb7nKc3dFg9hJ4f3a9"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_env() -> None:
    resolver = CredentialResolver(environ={"AGENT_7_OPENAI": KEY, "EMPTY": ""})
    secret = await resolver.resolve("env:AGENT_7_OPENAI", agent_id="a7", provider="openai")
    assert isinstance(secret, Secret) and secret.reveal() == KEY
    for ref in ("env:MISSING", "env:EMPTY"):
        with pytest.raises(CredentialsUnavailable, match=ref):
            await resolver.resolve(ref, agent_id="a7", provider="openai")


async def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_TEST_AGENT_KEY", KEY)
    secret = await CredentialResolver().resolve("env:GATEWAY_TEST_AGENT_KEY", agent_id="a", provider="p")
    assert secret.reveal() == KEY


async def test_file(tmp_path: Path) -> None:
    path = tmp_path / "openai"
    path.write_text(KEY + "\n")
    resolver = CredentialResolver()
    assert (await resolver.resolve(f"file:{path}", agent_id="a7", provider="openai")).reveal() == KEY
    crlf = tmp_path / "crlf"
    crlf.write_bytes(KEY.encode() + b"\r\n")
    assert (await resolver.resolve(f"file:{crlf}", agent_id="a7", provider="openai")).reveal() == KEY


@pytest.mark.parametrize(("content", "reason"), [(None, "cannot read"), (b"", "empty"), (b"\n", "empty"),
                                                 (b"\xff\xfe", "not UTF-8"), (b"x" * 70_000, "larger")])
async def test_file_failures(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "key"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CredentialsUnavailable, match=reason) as info:
        await CredentialResolver().resolve(f"file:{path}", agent_id="a", provider="p")
    assert str(path) in info.value.reason


async def test_enc() -> None:
    ring = Keyring.parse(generate_key("k1"))
    ref = ring.encrypt("a7", "openai", KEY)
    resolver = CredentialResolver(keyring=ring)
    assert (await resolver.resolve(ref, agent_id="a7", provider="openai")).reveal() == KEY
    with pytest.raises(CredentialsUnavailable):
        await resolver.resolve(ref, agent_id="a8", provider="openai")
    with pytest.raises(CredentialsUnavailable, match="no keyring"):
        await CredentialResolver().resolve(ref, agent_id="a7", provider="openai")


@pytest.mark.parametrize("ref", ["aws-sm:prod/a7#openai", "azure-kv:chat-kv/a7-openai", "vault:secret/a7#openai"])
async def test_network_stores_are_not_configured(ref: str) -> None:
    scheme = ref.partition(":")[0]
    with pytest.raises(CredentialsUnavailable, match=f"{scheme} store is not configured on this worker"):
        await CredentialResolver().resolve(ref, agent_id="a7", provider="openai")


async def test_plugging_in_a_store_is_one_line() -> None:
    seen: list[tuple[CredentialRef, str, str]] = []

    async def vault(ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        seen.append((ref, agent_id, provider))
        return Secret(KEY)

    resolver = CredentialResolver()
    resolver.register("vault", vault)
    assert (await resolver.resolve("vault:secret/a7#openai", agent_id="a7", provider="openai")).reveal() == KEY
    assert seen[0][0].field == "openai" and seen[0][1:] == ("a7", "openai")


async def test_a_store_clients_own_error_fails_closed() -> None:
    async def broken(ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        raise ConnectionError("refused")

    resolver = CredentialResolver()
    resolver.register("aws-sm", broken)
    with pytest.raises(CredentialsUnavailable, match=r"'aws-sm:prod/a7' could not be resolved \(ConnectionError\)"):
        await resolver.resolve("aws-sm:prod/a7", agent_id="a7", provider="openai")


async def test_malformed_reference_is_named_by_fingerprint_only() -> None:
    with pytest.raises(CredentialsUnavailable, match="malformed") as info:
        await CredentialResolver().resolve(KEY, agent_id="a7", provider="openai")
    assert KEY not in info.value.reason and "fp=" in info.value.reason


async def test_cache_ttl_picks_up_a_rotated_key() -> None:
    environ = {"K": "first"}
    clock = FakeClock()
    resolver = CredentialResolver(environ=environ, cache_seconds=300, clock=clock)
    assert (await resolver.resolve("env:K", agent_id="a", provider="p")).reveal() == "first"
    environ["K"] = "second"  # rotated in its store
    clock.now += 299
    assert (await resolver.resolve("env:K", agent_id="a", provider="p")).reveal() == "first"
    assert (await resolver.resolve("env:K", agent_id="b", provider="p")).reveal() == "second"  # per agent
    clock.now += 1
    assert (await resolver.resolve("env:K", agent_id="a", provider="p")).reveal() == "second"


async def test_cache_zero_always_reads_and_invalidate_forgets() -> None:
    environ = {"K": "first"}
    uncached = CredentialResolver(environ=environ, cache_seconds=0, clock=FakeClock())
    cached = CredentialResolver(environ=environ, cache_seconds=300, clock=FakeClock())
    await cached.resolve("env:K", agent_id="a", provider="p")
    environ["K"] = "second"
    assert (await uncached.resolve("env:K", agent_id="a", provider="p")).reveal() == "second"
    assert (await cached.resolve("env:K", agent_id="a", provider="p")).reveal() == "first"
    cached.invalidate("env:K")
    assert (await cached.resolve("env:K", agent_id="a", provider="p")).reveal() == "second"


async def test_failures_are_not_cached() -> None:
    environ: dict[str, str] = {}
    resolver = CredentialResolver(environ=environ, clock=FakeClock())
    with pytest.raises(CredentialsUnavailable):
        await resolver.resolve("env:K", agent_id="a", provider="p")
    environ["K"] = KEY
    assert (await resolver.resolve("env:K", agent_id="a", provider="p")).reveal() == KEY


async def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = generate_key("k1")
    ref = Keyring.parse(entry).encrypt("a7", "openai", KEY)
    monkeypatch.setenv("GATEWAY_KEYRING", entry)
    monkeypatch.setenv("GATEWAY_SECRET_CACHE_SECONDS", "5")
    resolver = CredentialResolver.from_settings(Settings())
    assert (await resolver.resolve(ref, agent_id="a7", provider="openai")).reveal() == KEY
