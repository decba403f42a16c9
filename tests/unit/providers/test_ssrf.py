"""Base URLs from profiles cannot reach internal addresses: every spelling, with an injected resolver and
with the real `socket.getaddrinfo` (address literals only: no lookup, no traffic); public addresses come
from an injected resolver (no real name is ever resolved)."""

from __future__ import annotations

import ipaddress
import socket
import threading

import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers import ssrf
from gateway_app.providers.base import ChatMessage, ChatRequest, ProviderNotConfigured
from gateway_app.providers.local import PLACEHOLDER_KEY, LocalProvider

PUBLIC = "93.184.216.34"

# host spelling in a URL -> (the address it means, the class named in the reason)
FORBIDDEN = {
    "169.254.169.254": ("169.254.169.254", "cloud metadata"),
    "2852039166": ("169.254.169.254", "cloud metadata"),  # decimal
    "0251.0376.0251.0376": ("169.254.169.254", "cloud metadata"),  # octal
    "0xa9fea9fe": ("169.254.169.254", "cloud metadata"),  # hex
    "0xa9.0xfe.0xa9.0xfe": ("169.254.169.254", "cloud metadata"),
    "169.254.1.1": ("169.254.1.1", "link-local"),
    "127.0.0.1": ("127.0.0.1", "loopback"),
    "127.1": ("127.0.0.1", "loopback"),  # short form
    "0x7f000001": ("127.0.0.1", "loopback"),
    "2130706433": ("127.0.0.1", "loopback"),
    "0177.0.0.1": ("127.0.0.1", "loopback"),
    "127.255.255.254": ("127.255.255.254", "loopback"),
    "10.0.0.1": ("10.0.0.1", "private"),
    "10.1": ("10.0.0.1", "private"),
    "172.16.0.1": ("172.16.0.1", "private"),
    "172.31.255.255": ("172.31.255.255", "private"),
    "192.168.1.1": ("192.168.1.1", "private"),
    "100.64.0.1": ("100.64.0.1", "carrier-grade NAT"),
    "100.127.255.254": ("100.127.255.254", "carrier-grade NAT"),
    "168.63.129.16": ("168.63.129.16", "Azure wire server"),
    "0.0.0.0": ("0.0.0.0", "unspecified"),
    "0": ("0.0.0.0", "unspecified"),
    "0.1.2.3": ("0.1.2.3", "unspecified"),
    "224.0.0.1": ("224.0.0.1", "multicast"),
    "239.255.255.250": ("239.255.255.250", "multicast"),
    "240.0.0.1": ("240.0.0.1", "reserved"),
    "255.255.255.255": ("255.255.255.255", "broadcast"),
    "192.0.2.1": ("192.0.2.1", "private"),  # documentation range: not globally routable
    "198.18.0.1": ("198.18.0.1", "private"),  # benchmarking
    "[::1]": ("::1", "loopback"),
    "[::]": ("::", "unspecified"),
    "[fe80::1]": ("fe80::1", "link-local"),
    "[fc00::1]": ("fc00::1", "private"),
    "[fd12:3456::1]": ("fd12:3456::1", "private"),
    "[fd00:ec2::254]": ("fd00:ec2::254", "cloud metadata"),
    "[ff02::1]": ("ff02::1", "multicast"),
    "[::ffff:169.254.169.254]": ("::ffff:169.254.169.254", "cloud metadata"),  # IPv4-mapped
    "[::ffff:a9fe:a9fe]": ("::ffff:169.254.169.254", "cloud metadata"),
    "[::ffff:127.0.0.1]": ("::ffff:127.0.0.1", "loopback"),
    "[::ffff:10.0.0.1]": ("::ffff:10.0.0.1", "private"),
    "[::ffff:168.63.129.16]": ("::ffff:168.63.129.16", "Azure wire server"),
    "[::169.254.169.254]": ("::169.254.169.254", "cloud metadata"),  # IPv4-compatible
    "[::127.0.0.1]": ("::127.0.0.1", "loopback"),
    "[64:ff9b::169.254.169.254]": ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64
    "[64:ff9b::7f00:1]": ("64:ff9b::7f00:1", "loopback"),
    "[64:ff9b::a00:1]": ("64:ff9b::a00:1", "private"),
    "[64:ff9b:1::1]": ("64:ff9b:1::1", "local-use NAT64"),
    "[2002:a9fe:a9fe::1]": ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4
}


def fixed(*addresses: str):
    """A resolver that answers these addresses for any name (and records what it was asked)."""
    asked: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return list(addresses)

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def unresolvable(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


def refused(url: str, *args, **kwargs) -> str:
    with pytest.raises(ProviderNotConfigured) as caught:
        ssrf.check_base_url(url, *args, **kwargs)
    error = caught.value
    assert error.code == ErrorCode.PROVIDER_NOT_CONFIGURED and not error.retriable
    return str(error)


# ---- every spelling, decoded by the checker itself (the resolver knows nothing) -----------------------

@pytest.mark.parametrize("host", FORBIDDEN)
def test_forbidden_spelling_is_refused_even_if_the_resolver_says_public(host):
    address, reason = FORBIDDEN[host]
    message = refused(f"http://{host}:8000/v1", (), fixed(PUBLIC))
    assert reason in message and str(ipaddress.ip_address(address)) in message, message
    assert f"{host}:8000" in message  # names the host


@pytest.mark.parametrize("host", FORBIDDEN)
def test_forbidden_spelling_with_the_real_getaddrinfo(host):
    """The default resolver, `socket.getaddrinfo`, on literals: no lookup and no connection."""
    address, reason = FORBIDDEN[host]
    message = refused(f"https://{host}/v1")
    assert reason in message and "443" in message, message
    # and getaddrinfo itself normalizes the spelling to the same address (numeric only: no DNS)
    bare = host.strip("[]")
    assert {ipaddress.ip_address(a) for a in ssrf.literal_only(bare, 443)} == {ipaddress.ip_address(address)}


@pytest.mark.parametrize("host", FORBIDDEN)
def test_forbidden_spelling_under_a_mandatory_allow_list(host):
    _, reason = FORBIDDEN[host]
    message = refused(f"http://{host}/v1", {"gpu-box.internal"}, ssrf.literal_only,
                      require_allow_list="LOCAL_LLM_ALLOWED_HOSTS")
    assert "not in LOCAL_LLM_ALLOWED_HOSTS" in message and reason in message, message


# ---- names that resolve to internal addresses (injected resolver) ----------------------------------

@pytest.mark.parametrize("address, reason", [
    ("169.254.169.254", "cloud metadata"), ("127.0.0.1", "loopback"), ("10.1.2.3", "private"),
    ("fd00:ec2::254", "cloud metadata"), ("::ffff:192.168.0.1", "private"), ("fe80::1%2", "link-local"),
    ("100.100.100.200", "carrier-grade NAT"), ("168.63.129.16", "Azure wire server"),
])
def test_a_name_is_refused_when_any_of_its_addresses_is_internal(address, reason):
    resolve = fixed(PUBLIC, address)
    message = refused("http://models.example.com/v1", (), resolve)
    assert reason in message and "models.example.com:80" in message, message
    assert resolve.asked == [("models.example.com", 80)]


def test_public_addresses_pass():
    for address in (PUBLIC, "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"):
        url = "https://models.example.com/v1"
        assert ssrf.check_base_url(url, (), fixed(address)) == url
    # a public literal resolves to itself with the real resolver (numeric: no lookup, no connection)
    assert ssrf.check_base_url(f"http://{PUBLIC}:8000/v1") == f"http://{PUBLIC}:8000/v1"
    assert ssrf.check_base_url("http://1572395042/v1") == "http://1572395042/v1"  # decimal 93.184.216.34


def test_a_name_that_does_not_resolve_is_refused():
    message = refused("http://nowhere.example/v1", (), unresolvable)
    assert "does not resolve" in message and "nowhere.example:80" in message
    assert "does not resolve" in refused("http://nowhere.example/v1", (), fixed())


async def test_async_wrapper_resolves_in_a_thread():
    loop_thread = threading.get_ident()
    threads = []

    def resolve(host: str, port: int) -> list[str]:
        threads.append(threading.get_ident())
        return [PUBLIC]

    assert await ssrf.check_base_url_async("http://models.example.com/v1", (), resolve) == \
        "http://models.example.com/v1"
    assert threads and threads[0] != loop_thread
    with pytest.raises(ProviderNotConfigured, match="cloud metadata"):
        await ssrf.check_base_url_async("http://2852039166/v1")


# ---- the allow-list: the operator's explicit permission ---------------------------------------------

def test_allow_list_by_host_any_port_and_by_host_port():
    never = fixed("169.254.169.254")  # what an allowed host resolves to is the operator's business
    assert ssrf.check_base_url("http://gpu-box.internal:8000/v1", {"gpu-box.internal"}, never)
    assert ssrf.check_base_url("https://gpu-box.internal/v1", {"gpu-box.internal"}, never)
    assert ssrf.check_base_url("http://gpu-box.internal:8000/v1", {"gpu-box.internal:8000"}, never)
    assert ssrf.check_base_url("http://127.0.0.1:11434/v1", {"127.0.0.1:11434"})
    assert ssrf.check_base_url("http://[::1]:11434/v1", {"[::1]:11434"})
    assert ssrf.check_base_url("http://[::1]:11434/v1", {"::1"})
    assert ssrf.check_base_url("http://GPU-Box.internal.:8000/v1", {"gpu-box.internal"}, never)
    assert never.asked == []  # allowed hosts are not resolved
    # another port, or another spelling of an allowed address, is not allowed
    assert "loopback" in refused("http://127.0.0.1:11435/v1", {"127.0.0.1:11434"})
    assert "loopback" in refused("http://127.1:11434/v1", {"127.0.0.1:11434"})
    assert "loopback" in refused("http://0x7f000001:11434/v1", {"127.0.0.1"})
    message = refused("http://gpu-box.internal:9000/v1", {"gpu-box.internal:8000"}, ssrf.literal_only,
                      require_allow_list="LOCAL_LLM_ALLOWED_HOSTS")
    assert message == "options.base_url host gpu-box.internal:9000 is not in LOCAL_LLM_ALLOWED_HOSTS"


def test_mandatory_allow_list_does_not_look_names_up():
    resolve = fixed(PUBLIC)
    message = refused("http://models.example.com/v1", (), ssrf.literal_only,
                      require_allow_list="LOCAL_LLM_ALLOWED_HOSTS")
    assert "not in LOCAL_LLM_ALLOWED_HOSTS" in message
    refused("http://models.example.com/v1", (), resolve, require_allow_list="LOCAL_LLM_ALLOWED_HOSTS")
    assert resolve.asked  # with a real resolver it would; the local provider passes literal_only


# ---- URL shapes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "ftp://models.example.com/v1", "file:///etc/passwd", "gopher://127.0.0.1:6379/_", "//models.example.com/v1",
    "models.example.com/v1", "http:///v1", "http://", "",
    "http://user:pw@models.example.com/v1", "http://models.example.com@169.254.169.254/v1",
    "http://models.example.com\\@169.254.169.254/v1", "http://%31%32%37.0.0.1/v1",
    "http://models.example.com:99999/v1", "http://models.example.com:/v1", "http://[fe80::1%25eth0]/v1",
    "http://models.example.com:80:80/v1", "http://mödels.example.com/v1", "http://models example.com/v1",
])
def test_only_plain_http_urls(url):
    refused(url, (), fixed(PUBLIC))


def test_not_a_string():
    refused(123, (), fixed(PUBLIC))  # type: ignore[arg-type]
    refused(None, (), fixed(PUBLIC))  # type: ignore[arg-type]


def test_reasons_never_carry_the_url_path_or_query():
    message = refused("http://10.0.0.1/v1?api_key=sk-secret-value", (), fixed(PUBLIC))
    assert "sk-secret-value" not in message


# ---- the local provider ---------------------------------------------------------------------------

def local_request(base_url: str) -> ChatRequest:
    return ChatRequest("m", "", (ChatMessage("user", "hi"),), 0, 10, options={"base_url": base_url})


def test_local_provider_never_sends_the_environment_key_to_a_profile_url(monkeypatch):
    monkeypatch.setenv("LOCAL_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LOCAL_LLM_API_KEY", "env-secret-key")
    monkeypatch.setenv("LOCAL_LLM_ALLOWED_HOSTS", "gpu-box.internal")
    provider = LocalProvider()
    assert provider.config_for(local_request("")).secret() == "env-secret-key"
    config = provider.config_for(local_request("http://gpu-box.internal:8000/v1"))
    assert config.endpoint == "http://gpu-box.internal:8000/v1" and config.secret() == PLACEHOLDER_KEY
    client = provider.build_client(config)
    assert client.api_key == PLACEHOLDER_KEY and client._client.follow_redirects is False
    env_client = provider.build_client(provider.config)
    assert env_client.api_key == "env-secret-key"


@pytest.mark.parametrize("host", ["169.254.169.254", "2852039166", "[::ffff:169.254.169.254]", "127.1",
                                  "0x7f000001", "10.0.0.1", "168.63.129.16", "[fd00:ec2::254]", "0"])
def test_local_provider_refuses_internal_spellings_before_any_client(host, monkeypatch):
    monkeypatch.setenv("LOCAL_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LOCAL_LLM_API_KEY", "env-secret-key")
    monkeypatch.setenv("LOCAL_LLM_ALLOWED_HOSTS", "127.0.0.1:9")
    monkeypatch.setattr(socket, "getaddrinfo", _no_lookups(socket.getaddrinfo))
    provider = LocalProvider()
    with pytest.raises(ProviderNotConfigured) as caught:
        provider.endpoint(local_request(f"http://{host}/v1"))
    message = str(caught.value)
    assert "LOCAL_LLM_ALLOWED_HOSTS" in message and FORBIDDEN[host][1] in message
    assert "env-secret-key" not in message
    assert len(provider._clients) == 0


def _no_lookups(real):
    def getaddrinfo(host, port, *args, flags=0, **kwargs):
        assert flags & socket.AI_NUMERICHOST, f"a DNS lookup of {host!r} from the event loop"
        return real(host, port, *args, flags=flags, **kwargs)
    return getaddrinfo
