"""SSRF: what a workflow author can make ``http.request`` reach, and how much it reads back.

Attacks reproduced here: IPv6 transition forms that wrap a private IPv4 (6to4, NAT64, Teredo,
IPv4-compatible, IPv4-mapped); DNS rebinding (the name resolves to an allowed address when
checked and to an internal one when connected); an allow-list entry meant for one port used
for another; a proxy from the environment carrying the request past the guard; a redirect to
a forbidden address; and a response too large to hold (announced, chunked, or compressed).
"""

from __future__ import annotations

import gzip
import ipaddress
import socket
import ssl
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import switchboard
from nodes.context import NodeContext
from nodes.errors import NodeConfigError, TransientError
from nodes.http_guard import AllowList, GuardedTransport, IPAddress, is_public
from tests.fakes.http import FakeHTTP, Reply
from tests.nodes.context import call_node, guarded_client, make_context

MiB = 1024 * 1024

# -- address classification ---------------------------------------------------------------

#: Teredo: 2001:0::/32, then the server's IPv4, flags, the obfuscated port and the client's
#: IPv4 with every bit inverted (RFC 4380).
_TEREDO_SERVER = "4136:e378"  # 65.54.227.120, a public Teredo server


def teredo(client: str, server: str = _TEREDO_SERVER) -> str:
    obfuscated = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    return f"2001:0:{server}:8000:63bf:{obfuscated >> 16:x}:{obfuscated & 0xFFFF:x}"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        # 6to4: 2002:<IPv4>::/48
        ("2002:7f00:1::", False),  # 127.0.0.1
        ("2002:a00:1::", False),  # 10.0.0.1
        ("2002:a9fe:a9fe::1", False),  # 169.254.169.254
        ("2002:c0a8:101::1", False),  # 192.168.1.1
        ("2002:5db8:d822::1", True),  # 93.184.216.34: a public IPv4 behind a relay
        # NAT64, well-known prefix 64:ff9b::/96
        ("64:ff9b::7f00:1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::10.1.2.3", False),
        ("64:ff9b::5db8:d822", True),  # what DNS64 hands an IPv6-only host for a public site
        # NAT64 local-use prefix 64:ff9b:1::/48 (RFC 8215): translated by the local network
        ("64:ff9b:1::7f00:1", False),
        ("64:ff9b:1:5db8:d8:2200::", False),
        # Teredo, client IPv4 obfuscated
        (teredo("127.0.0.1"), False),
        (teredo("10.0.0.1"), False),
        (teredo("192.168.0.10"), False),
        (teredo("93.184.216.34", server="a00:1"), False),  # a private Teredo server
        (teredo("93.184.216.34"), True),
        # IPv4-compatible ::/96 (deprecated; never a real destination)
        ("::7f00:1", False),
        ("::a00:1", False),
        ("::5db8:d822", False),
        # IPv4-mapped ::ffff:0:0/96
        ("::ffff:127.0.0.1", False),
        ("::ffff:7f00:1", False),
        ("::ffff:a9fe:a9fe", False),
        ("::ffff:93.184.216.34", True),
        # plain addresses
        ("::", False),
        ("::1", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
        ("2606:4700::1111", True),
        ("0.0.0.0", False),
        ("192.0.0.8", False),
        ("198.18.0.1", False),
        ("93.184.216.34", True),
    ],
)
def test_transition_forms_are_judged_by_the_ipv4_they_carry(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("url", ["http://[2002:7f00:1::]:1/", "http://[64:ff9b::7f00:1]:1/", "http://[::7f00:1]:1/"])
async def test_http_request_refuses_wrapped_loopback_addresses(url: str) -> None:
    async with guarded_client() as http:
        with pytest.raises(NodeConfigError, match="refusing to connect"):
            await call_node("http.request", {"url": url}, make_context(http))


# -- the allow-list -------------------------------------------------------------------------


def test_allow_list_entries_may_name_a_port() -> None:
    allow = AllowList.parse(
        "api.internal:8443, db.internal, 10.0.0.0/8:5432, 127.0.0.1, [fd00::1]:80, [fd12::/16], ::2"
    )
    ip = ipaddress.ip_address
    assert allow.allows("api.internal", ip("10.9.9.9"), 8443)
    assert not allow.allows("api.internal", ip("10.9.9.9"), 443)
    assert allow.allows("DB.internal.", ip("192.168.1.1"), 1)
    assert allow.allows("x", ip("10.1.2.3"), 5432)
    assert not allow.allows("x", ip("10.1.2.3"), 5433)
    assert allow.allows("x", ip("127.0.0.1"), 9)
    assert allow.allows("x", ip("fd00::1"), 80)
    assert not allow.allows("x", ip("fd00::1"), 81)
    assert allow.allows("x", ip("fd12::1"), 81)
    assert allow.allows("x", ip("::2"), 7)
    assert not allow.allows("x", ip("192.168.1.1"), 80)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [("api.internal:http", "port"), ("10.0.0.0/8:99999", "port"), ("[fd00::1", "]"), ("[nothost]:80", "address")],
)
def test_bad_allow_list_entries_are_refused_with_the_entry_named(entry: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        AllowList.parse(f"ok.internal,{entry}")
    assert entry in str(raised.value)


async def test_an_allow_list_entry_with_a_port_allows_that_port_only() -> None:
    allowed, other = FakeHTTP().start(), FakeHTTP().start()
    try:
        allowed.script("GET", "/", Reply(200, "allowed"))
        other.script("GET", "/", Reply(200, "other"))
        for entry in (f"127.0.0.1:{allowed.server_port}", f"localhost:{allowed.server_port}"):
            host = "localhost" if entry.startswith("localhost") else "127.0.0.1"
            async with guarded_client(entry) as http:
                out = await call_node(
                    "http.request", {"url": f"http://{host}:{allowed.server_port}/"}, make_context(http)
                )
                assert out["text"] == "allowed"
                with pytest.raises(NodeConfigError, match="refusing to connect"):
                    await call_node("http.request", {"url": f"http://{host}:{other.server_port}/"}, make_context(http))
        assert other.requests == []
    finally:
        allowed.stop()
        other.stop()


async def test_a_redirect_to_a_port_the_allow_list_does_not_name_is_refused() -> None:
    allowed, other = FakeHTTP().start(), FakeHTTP().start()
    try:
        allowed.script("GET", "/bounce", Reply(302, "", {"Location": other.url("/secret")}))
        async with guarded_client(f"127.0.0.1:{allowed.server_port}") as http:
            with pytest.raises(NodeConfigError, match=f"127.0.0.1:{other.server_port}"):
                await call_node("http.request", {"url": allowed.url("/bounce")}, make_context(http))
        assert other.requests == []
    finally:
        allowed.stop()
        other.stop()


# -- DNS rebinding --------------------------------------------------------------------------


@pytest.fixture
def public_and_internal() -> Iterator[tuple[FakeHTTP, FakeHTTP]]:
    """Two servers on one port: an allowed one on 127.0.0.1 and an internal one on 127.0.0.2."""
    public = FakeHTTP().start()
    internal = FakeHTTP(host="127.0.0.2", port=public.server_port).start()
    public.script("GET", "/", Reply(200, "public"))
    internal.script("GET", "/", Reply(200, "internal secrets"))
    try:
        yield public, internal
    finally:
        public.stop()
        internal.stop()


async def test_dns_rebinding_cannot_swap_the_checked_address(
    public_and_internal: tuple[FakeHTTP, FakeHTTP], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system resolver answers the allowed address first and the internal one after: the
    connection must go to the address that was checked, resolved once."""
    public, internal = public_and_internal
    answers = iter(["127.0.0.1", "127.0.0.2", "127.0.0.2", "127.0.0.2"])
    asked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def rebinding_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio passes IDNA bytes
        if name != "rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        asked.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_getaddrinfo)
    async with guarded_client("127.0.0.1") as http:
        out = await call_node("http.request", {"url": f"http://rebind.test:{public.server_port}/"}, make_context(http))
    assert out["text"] == "public"
    assert internal.requests == []
    assert asked == ["rebind.test"], "one resolution for one connection"
    assert public.calls("/")[0].headers["host"] == f"rebind.test:{public.server_port}"


async def test_one_resolution_per_connection_through_the_resolver_seam() -> None:
    """Three requests over one kept-alive connection resolve once; over closing connections,
    once each."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        asked.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    for keep_alive, resolutions in ((True, 1), (False, 3)):
        fake = FakeHTTP(keep_alive=keep_alive).start()
        asked.clear()
        try:
            fake.script("GET", "/", Reply(200, "ok"))
            transport = GuardedTransport(AllowList.parse("127.0.0.1"), resolver=resolver)
            async with httpx.AsyncClient(transport=transport) as http:
                for _ in range(3):
                    out = await call_node(
                        "http.request", {"url": f"http://seam.test:{fake.server_port}/"}, make_context(http)
                    )
                    assert out["text"] == "ok"
            assert (len(asked), fake.connections_opened) == (resolutions, resolutions)
        finally:
            fake.stop()


async def test_every_address_a_name_resolves_to_is_checked() -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")]

    transport = GuardedTransport(AllowList(), resolver=resolver)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(NodeConfigError, match=r"10\.0\.0\.1"):
            await call_node("http.request", {"url": "http://mixed.test/"}, make_context(http))


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate for ``tls.test``; yields its
    port and the server names (SNI) clients sent."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("tls.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    names: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello {self.headers['host']}".encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda sock, server_name, ctx: names.append(server_name)
    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1]), names
    finally:
        server.shutdown()
        server.server_close()


async def test_tls_uses_the_host_name_while_connecting_to_the_checked_address(
    tls_server: tuple[int, list[str | None]], tmp_path: Path
) -> None:
    """Connecting to the resolved IP must not lose the name: SNI, certificate check and Host."""
    port, names = tls_server

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    trusted = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    transport = GuardedTransport(AllowList.parse("127.0.0.1"), resolver=resolver, ssl_context=trusted)
    async with httpx.AsyncClient(transport=transport) as http:
        out = await call_node("http.request", {"url": f"https://tls.test:{port}/"}, make_context(http))
        assert out["text"] == f"hello tls.test:{port}"
        assert names == ["tls.test"]
        with pytest.raises(TransientError, match="certificate"):
            await call_node("http.request", {"url": f"https://other.test:{port}/"}, make_context(http))


# -- proxies from the environment -----------------------------------------------------------


async def test_proxies_from_the_environment_are_not_used(
    prefect_server: str, fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would connect wherever it is told, past the guard: the run's client uses none."""
    proxy = FakeHTTP().start()
    try:
        proxy.route("GET", "/", lambda request: Reply(200, "via proxy"), prefix=True)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(name, proxy.base_url)
        api = httpx.URL(prefect_server)  # Prefect's own client honours the proxy variables too
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, f"http://{api.host}:{api.port}")
        fake_http.script("GET", "/direct", Reply(200, "direct"))
        definition: dict[str, Any] = {
            "name": "proxy-test",
            "nodes": [
                {"id": "allowed", "type": "http.request", "params": {"url": fake_http.url("/direct")}},
                {"id": "metadata", "type": "http.request", "params": {"url": "http://169.254.169.254/latest/"}},
            ],
        }
        result = await switchboard.arun(definition, allow_hosts="127.0.0.1", record=False)
        assert result.nodes["allowed"].output["text"] == "direct"
        assert "refusing to connect" in (result.nodes["metadata"].error or "")
        assert proxy.requests == []
    finally:
        proxy.stop()


# -- the response size cap ------------------------------------------------------------------

CAP = 1 * MiB
TOTAL = 64 * MiB


def zeros(total: int = TOTAL, chunk: int = 64 * 1024) -> Iterator[bytes]:
    block = b"0" * chunk
    for _ in range(total // chunk):
        yield block


def capped(http: httpx.AsyncClient, cap: int = CAP) -> NodeContext:
    ctx = make_context(http)
    ctx.max_response_bytes = cap
    return ctx


def capped_client(cap: int = CAP) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=GuardedTransport(AllowList.parse("127.0.0.1"), max_response_bytes=cap))


@pytest.mark.parametrize("announced", [True, False], ids=["content-length", "chunked"])
async def test_an_oversized_response_fails_clearly_without_being_read(fake_http: FakeHTTP, announced: bool) -> None:
    fake_http.script("GET", "/huge", Reply(200, stream=zeros, length=TOTAL if announced else None))
    async with capped_client() as http:
        with pytest.raises(NodeConfigError, match="SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES") as raised:
            await call_node("http.request", {"url": fake_http.url("/huge")}, capped(http))
    assert "1,048,576 bytes" in str(raised.value)
    if announced:
        assert "67,108,864" in str(raised.value), "the announced size is named"
    fake_http.wait_closed()
    assert fake_http.sent_bytes.get("/huge", 0) < TOTAL // 2, "the client hung up instead of reading it all"


async def test_a_compressed_response_is_capped_by_its_decoded_size(fake_http: FakeHTTP) -> None:
    """A gzip bomb: 64 MiB of zeros in 64 KiB on the wire."""
    bomb = gzip.compress(b"\0" * TOTAL, compresslevel=9)
    assert len(bomb) < CAP // 4
    fake_http.script("GET", "/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        async with capped_client() as http:
            with pytest.raises(NodeConfigError, match="SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES"):
                await call_node("http.request", {"url": fake_http.url("/bomb")}, capped(http))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB, f"decoding stopped near the cap (peak {peak:,} bytes)"


async def test_a_redirect_body_is_capped_too(fake_http: FakeHTTP) -> None:
    """httpx reads a redirect's body before following it: the transport bounds it."""
    fake_http.script("GET", "/bounce", Reply(302, headers={"Location": "/next"}, stream=zeros))
    fake_http.script("GET", "/next", Reply(200, "never reached"))
    async with capped_client() as http:
        with pytest.raises(NodeConfigError, match="SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES"):
            await call_node("http.request", {"url": fake_http.url("/bounce")}, capped(http))
    assert fake_http.calls("/next") == []


async def test_a_head_response_may_announce_any_size(fake_http: FakeHTTP) -> None:
    fake_http.script("HEAD", "/huge", Reply(200, stream=zeros, length=TOTAL))
    async with capped_client() as http:
        out = await call_node("http.request", {"method": "HEAD", "url": fake_http.url("/huge")}, capped(http))
    assert (out["status"], out["headers"]["content-length"], out["text"]) == (200, str(TOTAL), "")


async def test_a_response_at_the_cap_is_read_whole(fake_http: FakeHTTP) -> None:
    fake_http.script("GET", "/exact", Reply(200, stream=lambda: zeros(CAP), length=CAP))
    async with capped_client() as http:
        out = await call_node("http.request", {"url": fake_http.url("/exact")}, capped(http))
    assert len(out["text"]) == CAP


@pytest.mark.usefixtures("prefect_server")
async def test_the_cap_is_an_operator_setting(fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES", str(CAP))
    fake_http.script("GET", "/huge", Reply(200, stream=zeros))
    fake_http.script("GET", "/small", Reply(200, "small"))
    definition = {
        "name": "cap-test",
        "nodes": [
            {"id": "huge", "type": "http.request", "retries": 2, "params": {"url": fake_http.url("/huge")}},
            {"id": "small", "type": "http.request", "params": {"url": fake_http.url("/small")}},
        ],
    }
    result = await switchboard.arun(definition, allow_hosts="127.0.0.1", record=False)
    assert result.nodes["small"].output["text"] == "small"
    huge = result.nodes["huge"]
    assert (huge.status, huge.attempts) == ("failed", 1), "not retried: a bigger answer will not shrink"
    assert "1,048,576 bytes" in (huge.error or "") and "SWITCHBOARD_HTTP_MAX_RESPONSE_BYTES" in (huge.error or "")
