"""A real SMTP server (aiosmtpd) for tests and benchmarks: STARTTLS with a throwaway certificate
made by `cryptography`, AUTH PLAIN/LOGIN, and every received message kept for inspection."""

from __future__ import annotations

import base64
import datetime as dt
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer  # noqa: N811 (aiosmtpd names it SMTP)
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

USER, PASSWORD = "mailer", "s3cret-pass"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost: (cert.pem, key.pem)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def make_dkim_key(folder: Path) -> tuple[Path, bytes]:
    """An RSA DKIM key: (private key PEM file, the DNS TXT record publishing its public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


@dataclass
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool


@dataclass
class SmtpSink:
    """The running server: where it listens and what it received."""

    host: str
    port: int
    ca_file: Path | None
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Called with each message before the server answers; may return an SMTP reply to refuse it.
    on_data: Callable[[Received], str | None] | None = None

    def received(self) -> list[Received]:
        """A copy of the messages received so far."""
        with self.lock:
            return list(self.messages)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, _o: Any
    ) -> str:
        if address.startswith("ghost@"):  # an unknown mailbox
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        got = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            content=content,
            tls=session.ssl is not None,
            authenticated=bool(session.authenticated),
        )
        with self.sink.lock:
            self.sink.messages.append(got)
        if self.sink.on_data is not None:
            reply = self.sink.on_data(got)
            if reply:
                return reply
        return "250 Message accepted"


def _authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class _Session(Session):
    # aiosmtpd 1.4 sets the deprecated login_data on every AUTH and warns; the suite turns
    # warnings into errors, which would fail the AUTH inside the server thread.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _Server(SMTPServer):
    def _create_session(self) -> Session:
        return _Session(self.loop)


class _Controller(Controller):
    def factory(self) -> SMTPServer:
        return _Server(self.handler, **self.SMTP_kwargs)


def start_sink(folder: Path | None, *, tls: bool = True) -> tuple[SmtpSink, Controller]:
    """Start a server on a free loopback port; with `tls`, STARTTLS and AUTH are required."""
    port = free_port()
    ca_file: Path | None = None
    kwargs: dict[str, Any] = {}
    if tls:
        assert folder is not None
        cert, key = make_certificate(folder)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        ca_file = cert
        kwargs = {
            "tls_context": ctx,
            "require_starttls": True,
            "authenticator": _authenticator,
            "auth_required": True,
        }
    sink = SmtpSink("127.0.0.1", port, ca_file)
    controller = _Controller(
        _Handler(sink), hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs
    )
    controller.start()
    return sink, controller
