"""Fetch a message's `audio.url`: only from a host on GATEWAY_AUDIO_URL_ALLOWLIST (the rules of
`providers.ssrf`, the allow-list mandatory: a host not on it is refused before any lookup or connection,
naming its internal address class when its literal shows one), no redirects followed, at most
GATEWAY_AUDIO_MAX_BYTES read, within GATEWAY_AUDIO_FETCH_TIMEOUT_SECONDS for the whole body. The URL's
path and query (which may carry a signature) are never logged or put in a reason: only its host.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

from gateway_app.contract.events import ErrorCode
from gateway_app.errors import GatewayError
from gateway_app.providers import ssrf
from gateway_app.providers.base import ProviderNotConfigured

ALLOW_LIST = "GATEWAY_AUDIO_URL_ALLOWLIST"
READ_PIECE = 64 * 1024


def host_of(url: str) -> str:
    try:
        return urlsplit(url).netloc.rsplit("@", 1)[-1] or "?"
    except ValueError:
        return "?"


def check_url(url: str, allowed: frozenset[str]) -> str:
    """The URL if it may be fetched; `audio_url_not_allowed` otherwise."""
    if not allowed:
        raise GatewayError(ErrorCode.AUDIO_URL_NOT_ALLOWED,
                           f"audio.url is refused: {ALLOW_LIST} is empty (send the audio as b64)")
    try:
        return ssrf.check_base_url(url, allowed, ssrf.literal_only, require_allow_list=ALLOW_LIST, what="audio.url")
    except ProviderNotConfigured as refused:
        raise GatewayError(ErrorCode.AUDIO_URL_NOT_ALLOWED, refused.reason) from None


async def fetch(url: str, allowed: frozenset[str], *, timeout: float, max_bytes: int) -> bytes:
    """The audio's bytes; raises `GatewayError` with audio_url_not_allowed, audio_fetch_failed or
    audio_too_large."""
    check_url(url, allowed)
    host = host_of(url)
    try:
        async with asyncio.timeout(timeout):
            async with aiohttp.ClientSession(trust_env=False) as session:
                async with session.get(url, allow_redirects=False) as response:
                    return await _body(response, host, max_bytes)
    except TimeoutError:
        raise GatewayError(ErrorCode.AUDIO_FETCH_FAILED,
                           f"audio.url host {host}: no whole answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise GatewayError(ErrorCode.AUDIO_FETCH_FAILED,
                           f"audio.url host {host}: {type(exc).__name__}") from None


async def _body(response: aiohttp.ClientResponse, host: str, max_bytes: int) -> bytes:
    if 300 <= response.status < 400:
        raise GatewayError(ErrorCode.AUDIO_FETCH_FAILED,
                           f"audio.url host {host} answered a redirect ({response.status}); redirects are not followed")
    if response.status != 200:
        raise GatewayError(ErrorCode.AUDIO_FETCH_FAILED, f"audio.url host {host} answered {response.status}")
    if response.content_length is not None and response.content_length > max_bytes:
        raise GatewayError(ErrorCode.AUDIO_TOO_LARGE, f"audio.url is {response.content_length} bytes; "
                                                      f"the limit is {max_bytes} (GATEWAY_AUDIO_MAX_BYTES)")
    data = bytearray()
    async for piece in response.content.iter_chunked(READ_PIECE):
        data += piece
        if len(data) > max_bytes:
            raise GatewayError(ErrorCode.AUDIO_TOO_LARGE,
                               f"audio.url is more than {max_bytes} bytes (GATEWAY_AUDIO_MAX_BYTES)")
    if not data:
        raise GatewayError(ErrorCode.AUDIO_INVALID, f"audio.url host {host} answered an empty body")
    return bytes(data)
