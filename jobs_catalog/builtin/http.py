"""``builtin.http_request``: one HTTP request, checked like a health check."""

from __future__ import annotations

import re
import socket
import time
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

import urllib3
from pydantic import AfterValidator
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util import parse_url

from jobs_catalog import JobContext, JobError, Param, RetryableError, RetryPolicy, job
from jobs_catalog.builtin.http_destinations import (
    CREDENTIALS_PROBLEM,
    DestinationRefusedError,
    checked_request,
    reason_of,
    url_problem,
)
from jobs_catalog.params import MASK

#: Redirects followed at most, when following is on.
MAX_REDIRECTS = 5
#: Bytes of the body read at most; the rest is not downloaded. ``contains`` looks in these.
MAX_BODY_BYTES = 1024 * 1024
#: Characters of the body kept in the result and in error messages.
EXCERPT_CHARS = 500
#: Statuses that mean "try again later" even though they are not 5xx.
TRANSIENT_STATUSES = frozenset({408, 429})
USER_AGENT = "jobs-catalog/builtin.http_request"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Request headers dropped when a redirect leads to another origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})

_STATUS_ENTRY = re.compile(r"^[1-5](?:[0-9]{2}|xx)$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HttpCheckError(JobError):
    """The server answered, but not as expected (not retried)."""


# --- parameter validation ----------------------------------------------------------------
def _http_url(value: str) -> str:
    value = value.strip()
    problem = url_problem(value)
    if problem == CREDENTIALS_PROBLEM:
        # The URL is shown in results and messages; credentials belong in bearer_token.
        problem = f"{problem}; use bearer_token instead"
    if problem:
        raise ValueError(problem)
    return value


def _headers(value: dict[str, str]) -> dict[str, str]:
    for name, header_value in value.items():
        if not _HEADER_NAME.match(name):
            raise ValueError("header names must be HTTP tokens (letters, digits, '-', ...)")
        if _CONTROL.search(header_value.replace("\t", " ")):
            raise ValueError("header values must not contain line breaks or control characters")
    return value


def _token(value: str) -> str:
    if _CONTROL.search(value) or " " in value:
        raise ValueError("must not contain spaces, line breaks or control characters")
    return value


def _statuses(value: list[int | str]) -> list[str]:
    entries = [str(item).strip().lower() for item in value]
    if not all(_STATUS_ENTRY.match(entry) for entry in entries):
        raise ValueError("each entry is a status code such as 204 or a class such as '2xx'")
    return entries


def _default_statuses() -> list[int | str]:
    return ["2xx"]


# --- the job -----------------------------------------------------------------------------
@job(
    "builtin.http_request",
    title="HTTP request / health check",
    retry=RetryPolicy(max_attempts=3),
    soft_time_limit=330,
    time_limit=360,
)
def http_request(
    ctx: JobContext,
    *,
    url: Annotated[str, AfterValidator(_http_url), Param(help="http:// or https:// URL")],
    method: Annotated[
        Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        Param(help="HTTP method"),
    ] = "GET",
    headers: Annotated[
        dict[str, str],
        AfterValidator(_headers),
        Param(
            default_factory=dict,
            help="extra request headers; shown in plain text, so put credentials in bearer_token",
        ),
    ],
    body: Annotated[str, Param(help="request body, sent as UTF-8 (empty: none)")] = "",
    expected_status: Annotated[
        list[int | str],
        AfterValidator(_statuses),
        Param(
            default_factory=_default_statuses,
            min_length=1,
            help="statuses that count as success: codes (200, 404) or classes ('2xx', '3xx')",
        ),
    ],
    contains: Annotated[
        str, Param(help="text the response body must contain (looked for in its first MiB)")
    ] = "",
    timeout: Annotated[
        float,
        Param(
            ge=0.1,
            le=300,
            allow_inf_nan=False,
            help="seconds (0.1 to 300) allowed for the response, connecting and reading "
            "the body included",
        ),
    ] = 10.0,
    follow_redirects: Annotated[
        bool, Param(help=f"follow up to {MAX_REDIRECTS} redirects (else a 3xx is the answer)")
    ] = True,
    bearer_token: Annotated[
        str,
        AfterValidator(_token),
        Param(secret=True, help="sent as 'Authorization: Bearer <token>'; never shown"),
    ] = "",
) -> dict[str, Any]:
    """Send one HTTP request and check the answer.

    Succeeds when the status is one of expected_status and, if contains is set, the body
    contains it. Connection failures, timeouts, 5xx, 408 and 429 are transient and retried;
    any other unexpected status fails at once. The result holds the status, the time taken,
    the body size and the start of the body.
    """
    request_headers = _request_headers(headers, bearer_token)
    started = time.monotonic()
    try:
        status, final_url, data, size, complete = _fetch(
            method, url, request_headers, body, timeout, follow_redirects
        )
    except DestinationRefusedError as exc:
        raise DestinationRefusedError(f"{method} {url}: {exc}") from None
    except (HTTPError, OSError) as exc:
        raise _transport_error(exc, method, url) from None
    elapsed_ms = round((time.monotonic() - started) * 1000)
    excerpt = _scrub(
        data[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS], bearer_token
    )
    ctx.logger.info("%s %s -> %s in %d ms (%d bytes)", method, url, status, elapsed_ms, size)
    _check_status(status, expected_status, method, url, excerpt)
    if contains and contains.encode("utf-8") not in data:
        raise HttpCheckError(
            f"{method} {url}: HTTP {status}, but the body does not contain the expected text"
        )
    result: dict[str, Any] = {
        "url": url,
        "method": method,
        "status": status,
        "elapsed_ms": elapsed_ms,
        "bytes": size,
        "body_complete": complete,
        "body_excerpt": excerpt,
    }
    if final_url != url:
        result["final_url"] = final_url
    return result


# --- helpers -----------------------------------------------------------------------------
def _request_headers(headers: dict[str, str], bearer_token: str) -> dict[str, str]:
    out = dict(headers)
    if not any(name.lower() == "user-agent" for name in out):
        out["User-Agent"] = USER_AGENT
    if bearer_token:
        out = {k: v for k, v in out.items() if k.lower() != "authorization"}
        out["Authorization"] = f"Bearer {bearer_token}"
    return out


def _fetch(
    method: str,
    url: str,
    headers: dict[str, str],
    body: str,
    timeout: float,
    follow_redirects: bool,
) -> tuple[int, str, bytes, int, bool]:
    """(status, final URL, first MAX_BODY_BYTES of the body, bytes read, whole body read).
    Redirects are followed here, one checked hop at a time; after MAX_REDIRECTS of them the
    last redirect is the answer."""
    deadline = time.monotonic() + timeout
    payload = body.encode("utf-8") if body else None
    for hop in range(MAX_REDIRECTS + 1):
        with checked_request(method, url, headers, payload, deadline) as response:
            location = response.headers.get("Location")
            redirected = response.status in REDIRECT_STATUSES and location
            if not (follow_redirects and redirected and hop < MAX_REDIRECTS):
                data, size, complete = _read_body(response, deadline, timeout)
                return response.status, url, data, size, complete
            response.drain_conn()
        next_url = urljoin(url, location)
        if urlsplit(next_url).scheme.lower() not in ("http", "https"):
            raise HttpCheckError(f"{method} {url}: redirected to a URL that is not http(s)")
        headers = _headers_for_redirect(headers, url, next_url)
        if response.status == 303 and method != "HEAD":
            method, payload = "GET", None
        url = next_url
    raise AssertionError("unreachable: the last hop returns")


def _headers_for_redirect(headers: dict[str, str], url: str, next_url: str) -> dict[str, str]:
    """Credentials do not follow a redirect to another origin."""
    if _origin(url) == _origin(next_url):
        return headers
    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = parse_url(url)
    return (parts.scheme or "", (parts.host or "").lower(), parts.port)


def _read_body(
    response: urllib3.BaseHTTPResponse, deadline: float, timeout: float
) -> tuple[bytes, int, bool]:
    data = bytearray()
    for chunk in response.stream(64 * 1024):
        data += chunk
        if time.monotonic() > deadline:
            raise TimeoutError(f"the body took longer than {timeout:g}s to arrive")
        if len(data) >= MAX_BODY_BYTES:
            return bytes(data[:MAX_BODY_BYTES]), len(data), False
    return bytes(data), len(data), True


def _check_status(status: int, expected: list[str], method: str, url: str, excerpt: str) -> None:
    if any(_status_matches(status, entry) for entry in expected):
        return
    message = f"{method} {url}: HTTP {status}, expected {', '.join(expected)}"
    if excerpt.strip():
        message += f"; body starts: {excerpt[:200]!r}"
    if status >= 500 or status in TRANSIENT_STATUSES:
        raise RetryableError(message)
    raise HttpCheckError(message)


def _status_matches(status: int, entry: str) -> bool:
    if entry.endswith("xx"):
        return status // 100 == int(entry[0])
    return status == int(entry)


def _transport_error(exc: BaseException, method: str, url: str) -> Exception:
    """The exception the job raises for a request that got no usable answer."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    where = f"{method} {url}"
    # Checked first: both subclass ConnectTimeoutError.
    if isinstance(exc, NameResolutionError | socket.gaierror):
        return ConnectionError(f"{where}: cannot resolve the host name: {reason_of(exc)}")
    if isinstance(exc, NewConnectionError):
        return ConnectionError(f"{where}: cannot connect: {reason_of(exc)}")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return TimeoutError(f"{where}: timed out: {reason_of(exc)}")
    if isinstance(exc, SSLError):
        # A certificate problem does not heal by retrying a few seconds later.
        return HttpCheckError(f"{where}: TLS error: {reason_of(exc)}")
    return ConnectionError(f"{where}: {type(exc).__name__}: {reason_of(exc)}")


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, MASK) if secret else text
