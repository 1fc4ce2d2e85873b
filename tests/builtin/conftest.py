"""Fixtures of the built-in job tests: an allowlisted file root and a local HTTP server."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from jobs_catalog.errors import ParameterError
from tests.builtin.controls import unthrottled  # noqa: F401 - a fixture
from tests.builtin.file_server import file_server  # noqa: F401 - a fixture


def old(path: Path, days: float, content: str = "x") -> Path:
    """Write ``path`` and date it ``days`` days back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    stamp = path.stat().st_mtime - days * 86400
    os.utime(path, (stamp, stamp))
    return path


def snapshot(directory: Path) -> dict[str, str]:
    """Every entry below ``directory``: relative path -> content, or the link target."""
    out = {}
    for path in sorted(directory.rglob("*")):
        key = path.relative_to(directory).as_posix()
        if path.is_symlink():
            out[key] = f"-> {os.readlink(path)}"
        elif path.is_file():
            out[key] = path.read_text()
        else:
            out[key] = "<dir>"
    return out


def assert_field_error(exc: ParameterError, job: str, field: str) -> None:
    """The error names the job and the field, both as data and in its message."""
    assert exc.job == job
    assert field in exc.by_field(), exc.by_field()
    assert repr(job) in str(exc) and f"{field}:" in str(exc)


@pytest.fixture
def root(tmp_path: Path, settings) -> Path:
    """An allowlisted directory, with ``tmp_path / "outside"`` next to it, not allowed."""
    allowed = tmp_path / "root"
    allowed.mkdir()
    (tmp_path / "outside").mkdir()
    settings.JOBS_FILE_ROOTS = [str(allowed)]
    return allowed


# --- a local HTTP server -------------------------------------------------------------------
@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    url: str
    seen: list[Seen] = field(default_factory=list)
    #: Set at teardown; the "slow" routes wait for it instead of sleeping.
    release: threading.Event = field(default_factory=threading.Event)


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.seen.append(Seen(self.command, self.path, dict(self.headers), body))
            route, _, arg = self.path.lstrip("/").partition("/")
            getattr(self, f"route_{route.replace('-', '_')}", self.route_missing)(arg, body)

        # The names http.server dispatches to.
        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer  # noqa: N815

        def send(self, status: int, body: bytes, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def route_ok(self, arg: str, body: bytes) -> None:
            self.send(200, b"hello from the test server")

        def route_status(self, arg: str, body: bytes) -> None:
            self.send(int(arg), f"status {arg}".encode())

        def route_echo(self, arg: str, body: bytes) -> None:
            text = f"{self.command} auth={self.headers.get('Authorization')} body={body.decode()}"
            self.send(int(arg or 200), text.encode())

        def route_redirect(self, arg: str, body: bytes) -> None:
            self.send(302, b"", Location="/ok")

        def route_goto(self, arg: str, body: bytes) -> None:
            # /goto/<url-quoted location>: a redirect to anywhere.
            self.send(302, b"", Location=unquote(arg))

        def route_see_other(self, arg: str, body: bytes) -> None:
            self.send(303, b"", Location="/echo")

        def route_loop(self, arg: str, body: bytes) -> None:
            self.send(302, b"", Location="/loop")

        def route_big(self, arg: str, body: bytes) -> None:
            self.send(200, b"a" * int(arg))

        def route_slow(self, arg: str, body: bytes) -> None:
            server.release.wait(5)
            self.send(200, b"late")

        def route_slow_body(self, arg: str, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"start")
            self.wfile.flush()
            server.release.wait(5)

        def route_missing(self, arg: str, body: bytes) -> None:
            self.send(404, b"no such route")

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client giving up on a slow route is expected here


@pytest.fixture
def http_server() -> Iterator[Server]:
    server = Server(url="")
    httpd = _QuietServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
