"""``builtin.download_files``: many URLs into one allowlisted directory.

Each file streams to disk in chunks under a hidden partial name (see
:mod:`jobs_catalog.builtin.staging`), its size capped as it arrives, its checksum checked,
and gets its name only when complete and verified. So a run is resumable: a retry (or a new
run after a crash) skips every file already under its name, and starts over any file a
crash left partial. Starting over rather than resuming with a Range request is deliberate:
at most ``concurrency`` files are partial at any moment, so little is lost, and a resumed
file would need a validator (ETag) kept beside it not to splice two versions of a file.

Every request, and every redirect, goes through the HTTP job's destination policy
(``JOBS_HTTP_ALLOW`` / ``JOBS_HTTP_DENY``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from jobs_catalog import JobContext, Param, RetryableError, RetryPolicy, job
from jobs_catalog.builtin.files import FileJobError
from jobs_catalog.builtin.http import MAX_REDIRECTS, REDIRECT_STATUSES, TRANSIENT_STATUSES
from jobs_catalog.builtin.http_destinations import (
    DestinationRefusedError,
    checked_request,
    url_problem,
)
from jobs_catalog.builtin.staging import (
    FileBusyError,
    Staged,
    file_name,
    open_directory,
    open_regular,
    size_text,
)
from jobs_catalog.paths import existing_directory, require_directory

MIB = 1024 * 1024
#: Bytes read from the network (and written) at a time.
CHUNK = 256 * 1024
#: Files in one run at most.
MAX_FILES = 10_000
#: Downloads at once at most.
MAX_CONCURRENCY = 16
#: Failed files listed at most in the result and in an error message.
FAILURES_SHOWN = 20
#: Seconds between two looks at cancellation while downloads run.
POLL_SECONDS = 0.5
USER_AGENT = "jobs-catalog/builtin.download_files"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --- parameters -------------------------------------------------------------------------
def _http_url(value: str) -> str:
    value = value.strip()
    problem = url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _optional_name(value: str | None) -> str | None:
    return None if value is None else file_name(value)


def _sha256(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise ValueError("must be a SHA-256 checksum: 64 hexadecimal characters")
    return value


class DownloadItem(BaseModel):
    """One file to download: its URL, the name to save it under (default: the last part of
    the URL's path) and, optionally, its SHA-256 checksum."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, AfterValidator(_http_url)]
    name: Annotated[str | None, AfterValidator(_optional_name)] = None
    sha256: Annotated[str | None, AfterValidator(_sha256)] = None


def _url_alone(value: Any) -> Any:
    return {"url": value} if isinstance(value, str) else value


def name_from_url(url: str) -> str | None:
    """The file name a URL suggests (its path's last part), or None if it has no usable one."""
    last = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    try:
        return file_name(last)
    except ValueError:
        return None


def _named(items: list[DownloadItem]) -> list[DownloadItem]:
    """Every item with its name (taken from its URL when not given); refuses an item with no
    usable name, and two items saved under one name (case aside)."""
    problems: list[str] = []
    claimed: dict[str, int] = {}
    named = []
    for index, item in enumerate(items):
        name = item.name or name_from_url(item.url)
        if name is None:
            problems.append(f"item {index}: its URL ends in no usable file name; give a name")
            continue
        key = name.casefold()
        if key in claimed:
            problems.append(f"items {claimed[key]} and {index} would both be saved as {name!r}")
        claimed.setdefault(key, index)
        named.append(item.model_copy(update={"name": name}))
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ValueError("; ".join(problems[:5]) + more)
    return named


File = Annotated[
    DownloadItem, BeforeValidator(_url_alone, json_schema_input_type=str | DownloadItem)
]


# --- the job ----------------------------------------------------------------------------
@job(
    "builtin.download_files",
    title="Download files",
    retry=RetryPolicy(max_attempts=3),
    soft_time_limit=3600,
    time_limit=3660,
    cancellable=True,
)
def download_files(
    ctx: JobContext,
    *,
    directory: Annotated[
        str,
        AfterValidator(existing_directory),
        Param(help="absolute path of an existing directory inside JOBS_FILE_ROOTS"),
    ],
    files: Annotated[
        list[File],
        AfterValidator(_named),
        Param(
            min_length=1,
            max_length=MAX_FILES,
            help="the files: each a URL, or {url, name, sha256}; name defaults to the last "
            "part of the URL's path, sha256 (64 hex characters) is checked when given",
        ),
    ],
    concurrency: Annotated[int, Param(ge=1, le=MAX_CONCURRENCY, help="downloads at once")] = 4,
    max_file_mb: Annotated[
        float,
        Param(gt=0, le=1024 * 1024, allow_inf_nan=False, help="largest file allowed, MiB"),
    ] = 1024,
    max_total_mb: Annotated[
        float,
        Param(
            gt=0,
            le=1024 * 1024,
            allow_inf_nan=False,
            help="most bytes all the files may take together, MiB (files already there count)",
        ),
    ] = 10240,
    timeout: Annotated[
        float,
        Param(
            ge=1,
            le=600,
            allow_inf_nan=False,
            help="seconds a connection may wait for the server (to connect, or between two "
            "pieces of data) before the download counts as stalled",
        ),
    ] = 30.0,
    allow_failures: Annotated[
        bool,
        Param(
            help="succeed even if some files could not be downloaded (they are listed in the "
            "result); a network error is still retried while attempts remain"
        ),
    ] = False,
) -> dict[str, Any]:
    """Download files over HTTP(S) into a directory, a few at a time.

    Each file streams to disk under a hidden '.<name>.partial' name and gets its name only
    once complete and, if a sha256 was given, verified: a file already present under its
    name is skipped (checked against its sha256 when given), so a retry or a rerun after a
    crash downloads only what is missing. Sizes are capped while the data arrives, whatever
    the server announced. A network error, a timeout or a 5xx/408/429 answer is retried; a
    4xx answer, a checksum mismatch, a file over a cap or a refused destination is not.
    """
    base = require_directory(directory)
    limits = _Limits(
        max_file=int(max_file_mb * MIB),
        timeout=timeout,
        budget=_Budget(int(max_total_mb * MIB)),
        stop=threading.Event(),
    )
    started = time.monotonic()
    dir_fd = open_directory(base)
    try:
        outcomes = _download_all(ctx, dir_fd, files, concurrency, limits)
        with contextlib.suppress(OSError):
            os.fsync(dir_fd)  # the new names, durable with the data they name
    finally:
        os.close(dir_fd)
    ctx.stop_if_cancelled()
    report = _report(base, files, outcomes, limits, time.monotonic() - started)
    if report["failed"]:
        transient = any(o.transient for o in outcomes.values())
        retry_left = ctx.attempt < ctx.max_attempts
        if transient and (retry_left or not allow_failures):
            raise RetryableError(_failure_text(report))
        if not allow_failures:
            raise FileJobError(_failure_text(report))
    ctx.logger.info(
        "%d files in %s: %d downloaded (%s), %d already there, %d failed",
        len(files),
        base,
        report["downloaded"],
        size_text(report["bytes_downloaded"]),
        report["already_present"],
        report["failed"],
    )
    return report


# --- running the downloads ------------------------------------------------------------------
class _Budget:
    """The bytes all the files may take together, shared by the download threads."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.exceeded = False
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        with self._lock:
            if self.used + count > self.limit:
                self.exceeded = True
                return False
            self.used += count
            return True

    def add(self, count: int) -> None:
        """Bytes already on disk: counted whatever the limit."""
        with self._lock:
            self.used += count

    def give_back(self, count: int) -> None:
        with self._lock:
            self.used -= count


@dataclass
class _Limits:
    max_file: int
    timeout: float
    budget: _Budget
    #: Set when the run must stop (cancelled, the total cap reached, the job interrupted):
    #: each download stops at its next chunk.
    stop: threading.Event


@dataclass(frozen=True)
class _Outcome:
    #: downloaded, present (already there), failed, stopped (interrupted by the run's stop)
    status: str
    size: int = 0
    error: str = ""
    transient: bool = False


class _ItemError(Exception):
    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class _StoppedError(Exception):
    pass


def _download_all(
    ctx: JobContext,
    dir_fd: int,
    items: list[DownloadItem],
    concurrency: int,
    limits: _Limits,
) -> dict[int, _Outcome]:
    """Run the downloads, ``concurrency`` at a time; the outcome of each item started, by
    index. Only this thread reports progress and asks about cancellation (both may touch
    the database); the download threads only move bytes."""
    outcomes: dict[int, _Outcome] = {}
    pending = iter(enumerate(items))
    running: dict[Future[_Outcome], int] = {}
    with ThreadPoolExecutor(min(concurrency, len(items)), "download") as pool:
        try:
            while True:
                while len(running) < concurrency and not limits.stop.is_set():
                    if ctx.cancelled:
                        limits.stop.set()
                        break
                    index, item = next(pending, (None, None))
                    if item is None:
                        break
                    running[pool.submit(_download_one, dir_fd, item, limits)] = index
                if not running:
                    break
                done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    index = running.pop(future)
                    outcomes[index] = outcome = future.result()
                    _log_outcome(ctx, items[index], outcome)
                    message = f"{outcome.status}: {items[index].name}"
                    ctx.progress(len(outcomes), len(items), message)
                if limits.budget.exceeded:
                    limits.stop.set()
                if ctx.cancelled:
                    limits.stop.set()
        except BaseException:
            # A time limit or an interrupt: the threads stop at their next chunk, their
            # partial files removed, before the pool is left.
            limits.stop.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def _log_outcome(ctx: JobContext, item: DownloadItem, outcome: _Outcome) -> None:
    if outcome.status == "failed":
        ctx.logger.warning("%s: %s", item.name, outcome.error)
    else:
        ctx.logger.debug("%s: %s (%s)", item.name, outcome.status, size_text(outcome.size))


def _download_one(dir_fd: int, item: DownloadItem, limits: _Limits) -> _Outcome:
    name = item.name or ""
    try:
        present = _present_size(dir_fd, name, item.sha256, limits)
        if present is not None:
            limits.budget.add(present)
            return _Outcome("present", present)
        size = _fetch(dir_fd, item, limits)
        return _Outcome("downloaded", size)
    except _StoppedError:
        return _Outcome("stopped")
    except _ItemError as exc:
        return _Outcome("failed", error=str(exc), transient=exc.transient)
    except FileBusyError as exc:
        return _Outcome("failed", error=str(exc), transient=True)
    except OSError as exc:  # the local file system (the network's errors are _ItemError)
        return _Outcome("failed", error=f"cannot write it here: {exc.strerror or exc}")


def _present_size(dir_fd: int, name: str, sha256: str | None, limits: _Limits) -> int | None:
    """The size of the file already under ``name`` if it counts as downloaded; None if there
    is none; raises :class:`_ItemError` if something else holds the name."""
    try:
        info = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise _ItemError("the name is taken by something that is not a regular file")
    if sha256 is None:
        return info.st_size
    fd = open_regular(dir_fd, name)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            if limits.stop.is_set():
                raise _StoppedError
            digest.update(chunk)
    finally:
        os.close(fd)
    if digest.hexdigest() != sha256:
        raise _ItemError("a file with other content (sha256) is already there; not replaced")
    return info.st_size


def _fetch(dir_fd: int, item: DownloadItem, limits: _Limits) -> int:
    """Download ``item`` under its partial name and publish it; its size."""
    name = item.name or ""
    taken = 0
    try:
        with Staged(dir_fd, name) as staged, _open(item.url, limits.timeout) as response:
            _check_answer(response, limits)
            digest = hashlib.sha256()
            for chunk in _chunks(response, item.url):
                if limits.stop.is_set():
                    raise _StoppedError
                if taken + len(chunk) > limits.max_file:
                    raise _ItemError(f"larger than max_file_mb ({size_text(limits.max_file)})")
                if not limits.budget.take(len(chunk)):
                    raise _ItemError(
                        f"the files together would exceed max_total_mb "
                        f"({size_text(limits.budget.limit)})"
                    )
                taken += len(chunk)
                digest.update(chunk)
                _write_all(staged.fd, chunk)
            if item.sha256 and digest.hexdigest() != item.sha256:
                raise _ItemError(f"checksum mismatch: got sha256 {digest.hexdigest()}")
            try:
                staged.publish()
            except FileExistsError:
                raise _ItemError("a file of that name appeared meanwhile; not replaced") from None
            return taken
    except BaseException:
        limits.budget.give_back(taken)
        raise


@contextlib.contextmanager
def _open(url: str, timeout: float) -> Iterator[urllib3.BaseHTTPResponse]:
    """A GET of ``url``, redirects followed one checked hop at a time; network errors and
    refusals raised as :class:`_ItemError` (what the caller's block raises passes unchanged)."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    for _hop in range(MAX_REDIRECTS + 1):
        with contextlib.ExitStack() as stack:
            try:
                response = stack.enter_context(
                    checked_request("GET", url, headers, None, time.monotonic() + timeout)
                )
            except DestinationRefusedError as exc:
                raise _ItemError(f"{url}: {exc}") from None
            except (HTTPError, OSError) as exc:
                raise _network_failure(exc, url) from None
            location = response.headers.get("Location")
            if response.status not in REDIRECT_STATUSES or not location:
                yield response
                return
        next_url = urljoin(url, location)
        if urlsplit(next_url).scheme.lower() not in ("http", "https"):
            raise _ItemError(f"{url}: redirected to a URL that is not http(s)")
        url = next_url
    raise _ItemError(f"more than {MAX_REDIRECTS} redirects")


def _network_failure(exc: BaseException, url: str) -> _ItemError:
    """A request that got no usable answer: worth retrying, but for a TLS error (a bad
    certificate does not heal in a few seconds)."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    if isinstance(exc, SSLError):
        return _ItemError(f"{url}: TLS error: {_reason(exc)}")
    # Checked first: both subclass ConnectTimeoutError.
    if isinstance(exc, NameResolutionError | socket.gaierror):
        what = "cannot resolve the host name"
    elif isinstance(exc, NewConnectionError | ConnectionError):
        what = "cannot connect"
    elif isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        what = "timed out"
    elif isinstance(exc, ProtocolError):
        what = "the connection broke off"
    else:
        what = type(exc).__name__
    return _ItemError(f"{url}: {what}: {_reason(exc)}", transient=True)


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    # urllib3 starts some messages with the connection object's repr.
    return text.split(": ", 1)[1] if text.startswith("<") and ": " in text else text


def _check_answer(response: urllib3.BaseHTTPResponse, limits: _Limits) -> None:
    status = response.status
    if status != 200:
        transient = status >= 500 or status in TRANSIENT_STATUSES
        raise _ItemError(f"HTTP {status}", transient=transient)
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limits.max_file:
        # Refused before reading; a server announcing less is still cut off while reading.
        raise _ItemError(
            f"larger than max_file_mb ({size_text(limits.max_file)}): the server announces "
            f"{size_text(int(announced))}"
        )


def _chunks(response: urllib3.BaseHTTPResponse, url: str) -> Iterator[bytes]:
    stream = response.stream(CHUNK)
    while True:
        try:
            chunk = next(stream, None)
        except (HTTPError, OSError) as exc:
            raise _network_failure(exc, url) from None
        if chunk is None:
            return
        if chunk:
            yield chunk


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- the report -----------------------------------------------------------------------------
def _report(
    base: Path,
    items: list[DownloadItem],
    outcomes: dict[int, _Outcome],
    limits: _Limits,
    took: float,
) -> dict[str, Any]:
    failures = []
    for index, item in enumerate(items):
        outcome = outcomes.get(index)
        if outcome is None or outcome.status == "stopped":
            reason = (
                "not downloaded: the total cap (max_total_mb) was reached"
                if limits.budget.exceeded
                else "not downloaded: the run stopped"
            )
            failures.append({"name": item.name, "error": reason})
        elif outcome.status == "failed":
            failures.append({"name": item.name, "error": outcome.error})
    downloaded = [o for o in outcomes.values() if o.status == "downloaded"]
    present = [o for o in outcomes.values() if o.status == "present"]
    return {
        "directory": str(base),
        "files": len(items),
        "downloaded": len(downloaded),
        "already_present": len(present),
        "failed": len(failures),
        "bytes_downloaded": sum(o.size for o in downloaded),
        "bytes_total": sum(o.size for o in downloaded + present),
        "seconds": round(took, 2),
        "failures": failures[:FAILURES_SHOWN],
    }


def _failure_text(report: dict[str, Any]) -> str:
    shown = "; ".join(f"{f['name']}: {f['error']}" for f in report["failures"][:10])
    more = f" (and {report['failed'] - 10} more)" if report["failed"] > 10 else ""
    return (
        f"{report['failed']} of {report['files']} files not downloaded into "
        f"{report['directory']} ({report['downloaded']} downloaded, "
        f"{report['already_present']} already there): {shown}{more}"
    )
