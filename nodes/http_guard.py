"""The SSRF guard: an httpx transport that connects only to public or allowed addresses.

Every connection the run's shared client (``ctx.http``) opens — the first request and each
redirect hop alike — is made by :class:`GuardedTransport`, and the check sits where the socket
is opened, in a network backend given to httpcore's connection pool:

* the host name is resolved **once** per connection, every address it resolves to must be
  public (:func:`is_public`) or allowed (:class:`AllowList`), and the socket is connected to
  one of those checked addresses. A second resolution between the check and the connect would
  let a DNS answer that changes in between (DNS rebinding) reach an internal address.
  The host name still goes into TLS (SNI, certificate check) and the ``Host`` header;
* IPv6 transition addresses (IPv4-mapped, 6to4, NAT64, Teredo) are judged by the IPv4 address
  they carry; IPv4-compatible and local-use NAT64 addresses are refused;
* there is no proxy: the transport never reads ``HTTP_PROXY`` and friends (a proxy would
  connect wherever it is told, past the check);
* a response body is read up to ``max_response_bytes`` (``Content-Length`` checked first);
  past it the read fails with :class:`ResponseTooLargeError`.

Why a network backend: httpx 0.28/0.29 gives its transport no way to choose the address it
connects to, and its ``AsyncHTTPTransport`` hides its httpcore pool in a private attribute.
httpcore's public API does: ``AsyncConnectionPool(network_backend=...)`` with an
``AsyncNetworkBackend`` whose ``connect_tcp(host, port)`` opens each connection, while TLS is
started afterwards with the origin's host name. So :class:`GuardedTransport` is a small
``httpx.AsyncBaseTransport`` over that public pool (request/response conversion and the
exception mapping are the few lines httpx's own transport has) and uses no private name of
either library.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: httpcore's socket options (``setsockopt`` arguments), as httpx spells the type.
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

#: Resolves ``(host, port)`` to the addresses to connect to (the system resolver by default).
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

#: The operator settings these limits come from (named in errors so people know what to change).
ALLOW_HOSTS_SETTING = "SWITCHBOARD_HTTP_ALLOW_HOSTS"
MAX_RESPONSE_SETTING = "SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES"
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024

#: Compressed bodies reach httpx's decoder in slices this small, so that one decoding step of a
#: gzip/deflate bomb (at most ~1032:1) makes at most ~4 MiB before the decoded size is counted.
_ENCODED_SLICE = 4096


class BlockedAddressError(httpx.RequestError):
    """The destination resolves to an address that workflows may not reach."""


class ResponseTooLargeError(httpx.RequestError):
    """The response body is larger than the client reads (``max_response_bytes``)."""

    def __init__(self, host: str, limit: int, announced: int | None = None) -> None:
        if announced is not None:
            what = f"{host} announced a response of {announced:,} bytes"
        else:
            what = f"the response from {host} is larger than that"
        super().__init__(f"Switchboard reads at most {limit:,} bytes of a response ({MAX_RESPONSE_SETTING}); {what}")
        self.host, self.limit, self.announced = host, limit, announced


# -- which addresses are public ----------------------------------------------------------

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
#: Not globally reachable (IANA special-purpose registry), although Python 3.11 says so.
_NOT_GLOBAL = (ipaddress.IPv4Network("192.0.0.0/24"),)


def carried_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 transition address leads to: IPv4-mapped, NAT64
    (``64:ff9b::/96``), 6to4 (``2002::/16``) and Teredo (``2001::/32``: server and client, the
    client de-obfuscated). Empty for other addresses."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address in _NAT64:
        return (ipaddress.IPv4Address(int(address) & 0xFFFFFFFF),)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo
    return ()


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses.

    A transition address is public when every IPv4 address it carries is; IPv4-compatible
    (``::/96``, deprecated) and local-use NAT64 (``64:ff9b:1::/48``, translated by whatever the
    local network chose) addresses never are. Decided here rather than by Python's tables
    alone, which differ between Python versions (3.11 calls ``2002:7f00:1::`` global).
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None and (address in _IPV4_COMPATIBLE or address in _NAT64_LOCAL):
            return False
        carried = carried_ipv4(address)
        if carried:
            return all(is_public(ipv4) for ipv4 in carried)
    if any(address in network for network in _NOT_GLOBAL):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


# -- the operator's allow-list ---------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks that may be reached even though they are private, each on any port
    or on one port only."""

    #: ``(host name, port or None for any)``.
    hosts: frozenset[tuple[str, int | None]] = frozenset()
    #: ``(network, port or None for any)``.
    networks: tuple[tuple[IPNetwork, int | None], ...] = ()

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> AllowList:
        """From ``"api.internal,db.internal:5432,10.0.0.0/8,10.1.0.0/16:443,[fd00::1]:8080"`` or a
        list of such entries: a host name, an IPv4 address or CIDR, an IPv6 address or CIDR
        (bracketed when it has a port), each optionally followed by ``:port``.

        Raises ``ValueError`` naming the entry that is none of these.
        """
        items = entries.split(",") if isinstance(entries, str) else list(entries)
        hosts: set[tuple[str, int | None]] = set()
        networks: list[tuple[IPNetwork, int | None]] = []
        for raw in items:
            entry = raw.strip().lower()
            if not entry:
                continue
            target, port, bracketed = _split_port(entry, raw)
            try:
                networks.append((ipaddress.ip_network(target, strict=False), port))
                continue
            except ValueError:
                if bracketed:
                    raise _entry_error(raw, f"[{target}] is not an IPv6 address or network") from None
            host = target.rstrip(".")
            if not host or not all(part and all(c.isalnum() or c in "-_" for c in part) for part in host.split(".")):
                raise _entry_error(raw, "it is neither a host name nor an IP address or network") from None
            hosts.add((host, port))
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str, port: int | None = None) -> bool:
        """The host name is on the list (for ``port``, or for any port)."""
        name = host.lower().rstrip(".")
        return (name, None) in self.hosts or (port is not None and (name, port) in self.hosts)

    def allows_address(self, address: IPAddress, port: int | None = None) -> bool:
        """The address is in a listed network (for ``port``, or for any port)."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)  # the same destination, written either way
        return any(
            candidate in network and (allowed is None or allowed == port)
            for network, allowed in self.networks
            for candidate in candidates
            if candidate.version == network.version
        )

    def allows(self, host: str, address: IPAddress, port: int) -> bool:
        """May a connection to ``host`` at ``address``, ``port`` be made although private?"""
        return self.allows_host(host, port) or self.allows_address(address, port)


def _entry_error(raw: str, why: str) -> ValueError:
    return ValueError(f"allow-list entry {raw.strip()!r} ({ALLOW_HOSTS_SETTING}): {why}")


def _split_port(entry: str, raw: str) -> tuple[str, int | None, bool]:
    """``(target, port, bracketed)`` of one entry: ``[v6]:port``, ``host:port`` or no port."""
    if entry.startswith("["):
        close = entry.find("]")
        if close < 0:
            raise _entry_error(raw, "an opening '[' needs its ']'")
        rest = entry[close + 1 :]
        if rest and not rest.startswith(":"):
            raise _entry_error(raw, "only ':port' may follow ']'")
        return entry[1:close], _port(rest[1:], raw) if rest else None, True
    if entry.count(":") == 1:  # more than one colon: an IPv6 address or network, no port
        target, _, port = entry.partition(":")
        return target, _port(port, raw), False
    return entry, None, False


def _port(text: str, raw: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _entry_error(raw, f"{text!r} is not a port (1-65535)")
    return int(text)


# -- resolving and connecting ----------------------------------------------------------------


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to (an IP literal is itself), in the system's order."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # Drop an IPv6 scope id ("fe80::1%eth0"): the address is judged without it.
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    return list(dict.fromkeys(found))


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to checked addresses; ``connect_tcp`` gets the host name."""

    def __init__(self, allow: AllowList, resolver: Resolver) -> None:
        self.allow = allow
        self.resolver = resolver
        self.inner = httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int, timeout: float | None) -> Sequence[IPAddress]:
        try:
            with anyio.fail_after(timeout):
                addresses = await self.resolver(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve host {host!r}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve host {host!r}: no addresses")
        for address in addresses:
            if not is_public(address) and not self.allow.allows(host, address, port):
                where = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
                raise BlockedAddressError(
                    f"refusing to connect to {host} ({where}): private, loopback, link-local and "
                    f"other non-public addresses are blocked; add the host (or host:port) to "
                    f"{ALLOW_HOSTS_SETTING} to allow it"
                )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        failure: Exception | None = None
        for address in await self.checked_addresses(host, port, timeout):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self.inner.connect_tcp(str(address), port, remaining, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next checked address, as a resolver-driven connect would
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("refusing to connect to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


# -- the transport ---------------------------------------------------------------------------

#: httpcore's exceptions and the public httpx ones they become, most specific first.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    """httpcore's exceptions as httpx's, and our own errors tied to ``request``."""
    try:
        yield
    except httpx.RequestError as exc:
        exc.request = request
        raise
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc), request=request) from exc
        raise


class _CappedBody(httpx.AsyncByteStream):
    """A response body that fails once more than ``limit`` bytes arrived."""

    def __init__(self, inner: AsyncIterable[bytes], request: httpx.Request, limit: int, *, encoded: bool) -> None:
        self.inner, self.request, self.limit, self.encoded = inner, request, limit, encoded

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        with _httpx_errors(self.request):
            async for chunk in self.inner:
                received += len(chunk)
                if received > self.limit:
                    raise ResponseTooLargeError(self.request.url.host, self.limit)
                if self.encoded and len(chunk) > _ENCODED_SLICE:
                    for start in range(0, len(chunk), _ENCODED_SLICE):
                        yield chunk[start : start + _ENCODED_SLICE]
                else:
                    yield chunk

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def _announced_length(response: httpcore.Response) -> int | None:
    for name, value in response.headers:
        if name.lower() == b"content-length" and value.strip().isdigit():
            return int(value)
    return None


def _is_encoded(response: httpcore.Response) -> bool:
    return any(
        name.lower() == b"content-encoding" and value.strip().lower() not in (b"", b"identity")
        for name, value in response.headers
    )


class GuardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects only to public or allowed addresses (module docstring).

    ``resolver`` replaces the system resolver (tests answer with it); ``ssl_context`` is the
    TLS configuration (built once per process by the runner: building one costs ~20 ms).
    """

    def __init__(
        self,
        allow: AllowList,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self.allow = allow
        self.max_response_bytes = max_response_bytes
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow, resolver or system_resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors(request):
            response = await self._pool.handle_async_request(core_request)
            announced = _announced_length(response)
            has_body = request.method != "HEAD" and response.status >= 200 and response.status not in (204, 304)
            if has_body and announced is not None and announced > self.max_response_bytes:
                await response.aclose()  # refused before a byte of the body is read
                raise ResponseTooLargeError(request.url.host, self.max_response_bytes, announced)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CappedBody(response.stream, request, self.max_response_bytes, encoded=_is_encoded(response)),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
