"""A local HTTP server of real files, for the download tests: it serves the files of one
directory in the ways servers do (a Content-Length, chunked, until the connection closes),
misbehaves on request (a false length, errors, redirects), and counts what it was asked."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

#: Bytes per write when serving a file.
PIECE = 64 * 1024


@dataclass
class FileServer:
    """Routes (``<url>/<route>/<name>``):

    - ``files``: the file ``root/<name>`` with its Content-Length;
    - ``chunked``: the same, chunked (no length announced);
    - ``close``: the same, HTTP/1.0 style: no length, the end of the connection ends it;
    - ``short``: announces twice the file's length, sends the file and closes (cut short);
    - ``status/<code>``: that status;
    - ``flaky``: 503 for the first ``flaky_failures`` requests of each name, then the file;
    - ``goto?to=<url>``: a redirect to that URL.

    ``hold``: (n, total) makes each file request wait until n are in flight at once or all
    ``total`` have arrived, so the most in flight shows the client's concurrency.
    """

    root: Path
    url: str = ""
    requests: Counter[str] = field(default_factory=Counter)
    paths: list[str] = field(default_factory=list)
    flaky_failures: int = 1
    hold: tuple[int, int] | None = None
    in_flight: int = 0
    most_in_flight: int = 0
    arrived: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def file_url(self, name: str, route: str = "files") -> str:
        return f"{self.url}/{route}/{name}"

    def _enter(self) -> None:
        with self._cond:
            self.in_flight += 1
            self.arrived += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self._cond.notify_all()
            if self.hold is not None:
                wanted, total = self.hold
                self._cond.wait_for(
                    lambda: self.hold is None or self.in_flight >= wanted or self.arrived >= total,
                    timeout=10,
                )

    def _leave(self) -> None:
        with self._cond:
            self.in_flight -= 1


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            server.paths.append(self.path)
            route, _, rest = parts.path.lstrip("/").partition("/")
            if route == "goto":
                target = parse_qs(parts.query)["to"][0]
                self._answer(302, b"", Location=target)
                return
            if route == "status":
                code, _, _ = rest.partition("/")
                self._answer(int(code), f"status {code}".encode())
                return
            name = unquote(rest)
            server.requests[name] += 1
            path = server.root / name
            if not path.is_file():
                self._answer(404, b"no such file")
                return
            if route == "flaky" and server.requests[name] <= server.flaky_failures:
                self._answer(503, b"try again later")
                return
            server._enter()
            try:
                getattr(self, f"serve_{route}", self.serve_files)(path)
            finally:
                server._leave()

        def _answer(self, status: int, body: bytes, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _pieces(self, path: Path) -> Iterator[bytes]:
            with path.open("rb") as source:
                while piece := source.read(PIECE):
                    yield piece

        def serve_files(self, path: Path) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(path.stat().st_size))
            self.end_headers()
            for piece in self._pieces(path):
                self.wfile.write(piece)

        def serve_chunked(self, path: Path) -> None:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in self._pieces(path):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def serve_close(self, path: Path) -> None:
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in self._pieces(path):
                self.wfile.write(piece)
            self.close_connection = True

        def serve_short(self, path: Path) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(2 * path.stat().st_size + 1))
            self.end_headers()
            for piece in self._pieces(path):
                self.wfile.write(piece)
            self.close_connection = True

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that stops reading a file it refuses is expected here


@contextmanager
def serving(root: Path) -> Iterator[FileServer]:
    """A server of the files in ``root`` on 127.0.0.1, in threads of this process."""
    server = FileServer(root)
    httpd = _Server(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        with server._cond:
            server.hold = None
            server._cond.notify_all()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    with serving(root) as server:
        yield server
