"""HTTP requests a test makes to a server it started: the answer whatever its status, or None
while nothing listens there yet. GET by default; ``send`` posts JSON."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(
    url: str,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    *,
    method: str = "GET",
    body: bytes | None = None,
) -> Response | None:
    """``method`` (GET) ``url``; None when no answer came: the connection was refused
    (nothing listens yet) or no reply within ``timeout`` (a server still starting its
    workers)."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.headers, exc.read())
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError | TimeoutError):
            return None
        raise
    except (ConnectionRefusedError, TimeoutError):
        return None


def send(
    url: str, payload: Any = None, headers: dict[str, str] | None = None, method: str = "POST"
) -> Response:
    """``method`` (POST) ``url`` with ``payload`` as its JSON body (none when None); the
    answer, which must come."""
    body = None if payload is None else json.dumps(payload).encode()
    sent = {**(headers or {}), **({"Content-Type": "application/json"} if body else {})}
    response = fetch(url, sent, method=method, body=body)
    if response is None:
        raise AssertionError(f"no answer from {method} {url}")
    return response
