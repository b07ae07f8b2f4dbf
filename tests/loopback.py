"""A loopback HTTP server for tests: serves files, runs per-request fault scripts, records requests.

Listens on 127.0.0.1 on a free port; nothing leaves the machine. With `tls=True` it speaks https
with a self-signed certificate for 127.0.0.1, written to `ca_file` (point SSL_CERT_FILE at it).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

MIB = 1024 * 1024


class Generated:
    """A large file made on the fly from one 1 MiB block, so the server holds only that block."""

    def __init__(self, size: int, seed: int = 7):
        self.size = size
        self.block = memoryview(random.Random(seed).randbytes(MIB))

    def __len__(self) -> int:
        return self.size

    def pieces(self, start: int, end: int) -> Iterator[memoryview]:
        pos = start
        while pos < end:
            offset = pos % MIB
            count = min(MIB - offset, end - pos)
            yield self.block[offset : offset + count]
            pos += count

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for piece in self.pieces(0, self.size):
            digest.update(piece)
        return digest.hexdigest()


def _pieces(content: bytes | Generated, start: int, end: int) -> Iterator[memoryview]:
    if isinstance(content, Generated):
        yield from content.pieces(start, end)
        return
    view = memoryview(content)
    for pos in range(start, end, 256 * 1024):
        yield view[pos : min(end, pos + 256 * 1024)]


@dataclass
class Seen:
    method: str
    path: str  # with the query string
    headers: dict[str, str]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Httpd

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        with owner.lock:
            owner.requests.append(Seen(self.command, self.path, dict(self.headers.items())))
            script = owner.scripts.get(parts.path)
            action = script.pop(0) if script else None
        if action is not None:
            action(self)
        elif parts.path in owner.routes:
            owner.routes[parts.path](self, dict(parse_qsl(parts.query)))
        elif parts.path in owner.files:
            self.serve(owner.files[parts.path])
        else:
            self.plain(404)

    # ---- answers
    def plain(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"nope\n") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json(self, value, headers: dict[str, str] | None = None) -> None:
        self.plain(200, {"Content-Type": "application/json", **(headers or {})}, json.dumps(value).encode())

    def serve(
        self,
        content: bytes | Generated,
        *,
        stop_after: int | None = None,
        ignore_range: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        size, start, status = len(content), 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if match and not ignore_range:
            start, status = int(match[1]), 206
        self.send_response(status)
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"v1"')
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = 0
        for piece in _pieces(content, start, size):
            if stop_after is not None and sent + len(piece) >= stop_after:
                self.wfile.write(piece[: stop_after - sent])
                self.wfile.flush()
                self.close_connection = True  # the server closes the socket mid-body
                return
            self.wfile.write(piece)
            sent += len(piece)


Action = Callable[[Handler], None]


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    def handle_error(self, request, client_address) -> None:  # clients that hang up early are expected
        pass


def _self_signed(folder: str) -> tuple[str, str]:
    """(certificate file, key file) of a fresh self-signed certificate for 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = f"{folder}/cert.pem", f"{folder}/key.pem"
    with open(cert_file, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return cert_file, key_file


class LoopbackServer:
    def __init__(self, tls: bool = False):
        self.files: dict[str, bytes | Generated] = {}
        self.scripts: dict[str, list[Action | None]] = {}  # per path, one action per request, then normal
        self.routes: dict[str, Callable[[Handler, dict[str, str]], None]] = {}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.httpd = _Httpd(("127.0.0.1", 0), Handler)
        self.httpd.owner = self
        self.tls = tls
        self.ca_file: str | None = None
        if tls:
            self._certs = tempfile.TemporaryDirectory(prefix="loopback-tls-")
            self.ca_file, key_file = _self_signed(self._certs.name)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, key_file)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def seen(self, path: str) -> list[Seen]:
        with self.lock:
            return [r for r in self.requests if urlsplit(r.path).path == path]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def redirect(location: str, code: int = 302) -> Action:
    return lambda handler: handler.plain(code, {"Location": location}, b"")


def status(code: int, headers: dict[str, str] | None = None) -> Action:
    return lambda handler: handler.plain(code, headers)


def half_then_close(content: bytes) -> Action:
    return lambda handler: handler.serve(content, stop_after=len(content) // 2)
