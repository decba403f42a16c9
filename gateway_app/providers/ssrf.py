"""Base URLs that come from a profile must not reach internal addresses (server-side request forgery).

`check_base_url(url, allowed, resolve)` returns the URL it may call or raises `ProviderNotConfigured`
naming the URL's host and the rule it broke (never a key). The rules, in order:

- the scheme is http or https; the authority is a plain host (letters, digits, `.`, `-`, or a bracketed
  IPv6 literal) with an optional port: no user info, no percent-encoding, no backslashes, so that the host
  checked here is the host the HTTP client connects to;
- a host on the allow-list (`host` = any port, or `host:port`) passes: the operator's explicit permission;
- otherwise the host is decoded as an address literal in every spelling the C library accepts (decimal
  `2852039166`, octal `0251.0376.0251.0376`, hex `0xa9fea9fe`, short `127.1`, bracketed IPv6) and resolved
  with `resolve` (default: `socket.getaddrinfo`); it is refused if it does not resolve, or if ANY address
  is internal (`forbidden_class`): loopback, private (RFC 1918, IPv6 ULA fc00::/7, site-local),
  link-local (169.254.0.0/16 with the cloud metadata 169.254.169.254, fe80::/10, fd00:ec2::254),
  unspecified (0.0.0.0/8, ::), multicast, reserved/broadcast (240.0.0.0/4, 255.255.255.255 and every
  other range that is not globally routable), carrier-grade NAT 100.64.0.0/10, the Azure wire server
  168.63.129.16, or an IPv6 form that embeds one of those (IPv4-mapped ::ffff:0:0/96, IPv4-compatible
  ::/96, NAT64 64:ff9b::/96, 6to4 2002::/16); the local-use NAT64 prefix 64:ff9b:1::/48 is refused whole.

`require_allow_list="VAR"` makes the allow-list mandatory (the `local` provider): a host not on it is
refused, with the internal address class as the reason when its literal or resolution shows one.

Resolution blocks: from async code call `check_base_url_async` (runs in a thread), or pass `resolve=
literal_only`, which never looks anything up. Resolving here and connecting later resolves twice: a name
may resolve elsewhere by then (DNS rebinding); a caller that connects to names that are not allow-listed
should connect to the addresses checked here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from typing import Callable, Iterable
from urllib.parse import urlsplit

from gateway_app.providers.base import ProviderNotConfigured

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Iterable[str]]  # (host, port) -> addresses; raises OSError if none

_AUTHORITY = re.compile(r"^(?:[a-z0-9.\-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$")
_NETS = ipaddress.ip_network
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
AZURE_WIRE_SERVER = ipaddress.ip_address("168.63.129.16")
CGNAT = _NETS("100.64.0.0/10")
NAT64 = _NETS("64:ff9b::/96")
NAT64_LOCAL = _NETS("64:ff9b:1::/48")
IPV4_COMPATIBLE = _NETS("::/96")
ULA = _NETS("fc00::/7")
THIS_NETWORK = _NETS("0.0.0.0/8")


def forbidden_class(address: IPAddress) -> str | None:
    """Why a request must not go to this address (its class), or None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = forbidden_class(embedded)
            return f"{inner} (IPv6 form of {embedded})" if inner else None
        if address in NAT64_LOCAL:
            return "reserved (local-use NAT64 64:ff9b:1::/48)"
    if address in METADATA:
        return "link-local (cloud metadata service)"
    if address == AZURE_WIRE_SERVER:
        return "the Azure wire server"
    if address.is_unspecified or (address.version == 4 and address in THIS_NETWORK):
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.version == 4 and address in CGNAT:
        return "carrier-grade NAT 100.64.0.0/10"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address == ipaddress.IPv4Address("255.255.255.255"):
        return "broadcast"
    if address.is_reserved:
        return "reserved"
    if (address.version == 6 and (address in ULA or address.is_site_local)) or address.is_private:
        return "private"
    if not address.is_global:
        return "reserved (not globally routable)"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: mapped, compatible, NAT64, 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64 or (address in IPV4_COMPATIBLE and int(address) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host spells, in any form the C library accepts (no lookup); None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:  # inet_aton: the legacy IPv4 spellings (decimal, octal, hex, short forms) that resolvers accept
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (blocking: DNS). Raises OSError if it does not resolve."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def literal_only(host: str, port: int) -> list[str]:
    """A resolver that never looks anything up: address literals only, names do not resolve."""
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_NUMERICHOST)]


def is_allowed(host: str, port: int, allowed: Iterable[str]) -> bool:
    """Is `host` (any port) or `host:port` on the allow-list (lower-case entries)?"""
    names = {host, f"{host}:{port}"}
    if ":" in host:  # IPv6: `[::1]` and `[::1]:8000` too
        names |= {f"[{host}]", f"[{host}]:{port}"}
    return not names.isdisjoint(allowed)


def split_base_url(url: str, what: str = "options.base_url") -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL with a plain authority; ProviderNotConfigured otherwise.
    `what`: the field the URL came from, as the reasons name it."""
    if not isinstance(url, str):
        raise ProviderNotConfigured(f"{what} is not a string")
    try:
        parts = urlsplit(url.strip())
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").rstrip("."), parts.port
    except ValueError:
        raise ProviderNotConfigured(f"{what} is not a valid URL") from None
    if scheme not in ("http", "https") or not host:
        raise ProviderNotConfigured(f"{what} must be an http(s) URL with a host (scheme {scheme!r})")
    if not _AUTHORITY.match(parts.netloc.lower()):
        raise ProviderNotConfigured(
            f"{what} host {host!r}: only a plain host and port are allowed "
            "(no user info, percent-encoding or other characters)")
    return scheme, host, port or (443 if scheme == "https" else 80)


def check_base_url(url: str, allowed: Iterable[str] = (), resolve: Resolver = resolve_host, *,
                   require_allow_list: str | None = None, what: str = "options.base_url") -> str:
    """The URL, if a request may go there (see the module's rules); raises ProviderNotConfigured."""
    _, host, port = split_base_url(url, what)
    allowed = frozenset(allowed)
    if is_allowed(host, port, allowed):
        return url
    where = f"{what} host {f'[{host}]' if ':' in host else host}:{port}"
    addresses: list[IPAddress] = []
    literal = literal_address(host)
    if literal is not None:
        addresses.append(literal)
    try:
        addresses += [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host, port)]
        resolved = True
    except (OSError, UnicodeError, ValueError):
        resolved = False
    for address in addresses:
        reason = forbidden_class(address)
        if reason is not None:
            if require_allow_list is not None:
                raise ProviderNotConfigured(f"{where} is not in {require_allow_list}, "
                                            f"and its address {address} is {reason}")
            raise ProviderNotConfigured(f"{where} is refused: its address {address} is {reason}; "
                                        "only public addresses are allowed")
    if require_allow_list is not None:
        raise ProviderNotConfigured(f"{where} is not in {require_allow_list}")
    if not addresses or not resolved:
        raise ProviderNotConfigured(f"{where} is refused: it does not resolve to any address")
    return url


async def check_base_url_async(url: str, allowed: Iterable[str] = (), resolve: Resolver = resolve_host, *,
                               require_allow_list: str | None = None) -> str:
    """`check_base_url` in a thread: resolution must not block the event loop."""
    return await asyncio.to_thread(check_base_url, url, frozenset(allowed), resolve,
                                   require_allow_list=require_allow_list)
