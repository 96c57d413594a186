"""An httpx transport that refuses private, loopback and link-local destinations (SSRF guard).

Every request, including each redirect hop, passes through :class:`GuardedTransport`: the host
is resolved and every address it resolves to must be public, unless the host (or one of its
addresses) is on the allow-list of host names and CIDR ranges.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddressError(httpx.RequestError):
    """The destination resolves to an address that workflows may not reach."""


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks that may be reached even though they are private."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> AllowList:
        """From ``"api.internal,10.0.0.0/8,127.0.0.1"`` or a list of such entries."""
        items = entries.split(",") if isinstance(entries, str) else list(entries)
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in items:
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not (address.is_multicast or address.is_reserved)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve host {host!r}: {exc}") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]


class GuardedTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and refuses destinations that are not public or allowed."""

    def __init__(self, allow: AllowList, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.allow = allow
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def check(self, url: httpx.URL) -> None:
        host = url.host
        if self.allow.allows_host(host):
            return
        port = url.port or (443 if url.scheme == "https" else 80)
        for address in await _resolve(host, port):
            if not is_public(address) and not self.allow.allows_address(address):
                raise BlockedAddressError(
                    f"refusing to connect to {host} ({address}): private, loopback and "
                    "link-local addresses are blocked; add the host to "
                    "SWITCHBOARD_HTTP_ALLOW_HOSTS to allow it"
                )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.check(request.url)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
