"""Real receivers of alerts on 127.0.0.1, for tests: an SMTP server (aiosmtpd), a webhook
server that checks the signature itself, and a Sentry stand-in that takes envelopes the way
Sentry's ingestion does (``POST /api/<project>/envelope/``) and keeps what it was sent."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- SMTP -------------------------------------------------------------------------------------
@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_content()


class SmtpReceiver:
    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted"

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


# --- HTTP servers -----------------------------------------------------------------------------
class _Server:
    """A threaded HTTP server on 127.0.0.1 whose POSTs go to ``self.handle``."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer, *more = owner.handle(self.path, dict(self.headers), body)
                self.send_response(status)
                for name, value in (more[0] if more else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple:
        """(status, body) or (status, body, {header: value})."""
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(_Server):
    """Checks ``X-Jobs-Signature`` with its own HMAC code and answers 401 when it does not
    match; ``fail_next`` answers that many requests with HTTP 500 first; ``delay`` seconds
    pass before each answer."""

    def __init__(self, secret: str, fail_next: int = 0, delay: float = 0.0) -> None:
        super().__init__()
        self.secret = secret
        self.fail_next = fail_next
        self.delay = delay
        self.hooks: list[Hook] = []
        self.refused: list[Hook] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T0KEN-in-the-path"

    def signature_ok(self, header: str, body: bytes) -> bool:
        try:
            parts = dict(item.split("=", 1) for item in header.split(","))
            stamp = parts["t"]
        except (KeyError, ValueError):
            return False
        if abs(time.time() - int(stamp)) > 300:
            return False
        expected = hmac.new(self.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        return hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        time.sleep(self.delay)
        hook = Hook(
            path, headers, body, self.signature_ok(headers.get("X-Jobs-Signature", ""), body)
        )
        if self.fail_next > 0:
            self.fail_next -= 1
            self.refused.append(hook)
            return 500, b'{"error": "try later"}'
        if not hook.verified:
            self.refused.append(hook)
            return 401, b'{"error": "bad signature"}'
        self.hooks.append(hook)
        return 200, b'{"ok": true}'


class Redirector(_Server):
    """Answers every POST with ``302 Found`` to ``location``, and counts them."""

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location
        self.posts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/moved"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple:
        self.posts += 1
        return 302, b"{}", {"Location": self.location}


@dataclass
class EnvelopeItem:
    type: str
    headers: dict[str, Any]
    payload: Any


@dataclass
class Envelope:
    headers: dict[str, Any]
    auth: str
    items: list[EnvelopeItem] = field(default_factory=list)


def parse_envelope(data: bytes, auth: str) -> Envelope:
    """Sentry's envelope format: a header line, then items, each a header line and a payload
    (``length`` bytes, or up to the next newline)."""
    lines = data.split(b"\n", 1)
    envelope = Envelope(json.loads(lines[0]), auth)
    rest = lines[1] if len(lines) > 1 else b""
    while rest.strip():
        header_line, rest = rest.split(b"\n", 1)
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] :]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        try:
            body: Any = json.loads(payload)
        except ValueError:
            body = payload
        envelope.items.append(EnvelopeItem(header.get("type", ""), header, body))
    return envelope


class SentryReceiver(_Server):
    """Takes envelopes for project 42 with the public key ``publickey``."""

    PROJECT = "42"
    KEY = "publickey"

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []
        self._lock = threading.Lock()

    @property
    def dsn(self) -> str:
        return f"http://{self.KEY}@127.0.0.1:{self.port}/{self.PROJECT}"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if path.rstrip("/") != f"/api/{self.PROJECT}/envelope":
            return 404, b"{}"
        auth = headers.get("X-Sentry-Auth", "")
        if f"sentry_key={self.KEY}" not in auth:
            return 403, b"{}"
        encoding = headers.get("Content-Encoding", "")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        with self._lock:
            self.envelopes.append(parse_envelope(body, auth))
        return 200, b"{}"

    def items(self, kind: str) -> list[Any]:
        with self._lock:
            return [i.payload for e in self.envelopes for i in e.items if i.type == kind]

    def events(self) -> list[dict[str, Any]]:
        return self.items("event")

    def checkins(self) -> list[dict[str, Any]]:
        return self.items("check_in")
