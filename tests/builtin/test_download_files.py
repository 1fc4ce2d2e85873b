"""``builtin.download_files`` against a real local HTTP server serving real files."""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import quote

import pytest

from jobs_catalog import JobCancelled, JobContext, RetryableError
from jobs_catalog.builtin.files import FileJobError
from jobs_catalog.errors import ParameterError
from jobs_catalog.registry import registry
from tests.builtin.conftest import assert_field_error, snapshot
from tests.builtin.controls import Control
from tests.builtin.file_server import FileServer

NAME = "builtin.download_files"
KIB = 1024


@pytest.fixture
def job():
    return registry.get(NAME)


def run(job, control: Control | None = None, attempt: int = 1, **params):
    context = JobContext(job=NAME, control=control, attempt=attempt, max_attempts=3)
    return job.call(params, context)


def serve(server: FileServer, name: str, size: int, seed: int = 0) -> bytes:
    """A file of ``size`` bytes on the server; its content."""
    data = hashlib.sha256(f"{name}{seed}".encode()).digest() * (size // 32 + 1)
    data = data[:size]
    (server.root / name).write_bytes(data)
    return data


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# --- downloading ----------------------------------------------------------------------------
def test_downloads_every_file_however_it_is_served(job, root: Path, file_server, unthrottled):
    a = serve(file_server, "a.bin", 300 * KIB)
    b = serve(file_server, "b.bin", 200 * KIB)
    c = serve(file_server, "c d.txt", 5)
    control = Control()

    result = run(
        job,
        control,
        directory=str(root),
        files=[
            file_server.file_url("a.bin"),
            {"url": file_server.file_url("b.bin", "chunked"), "name": "bee.bin", "sha256": sha(b)},
            {"url": file_server.file_url(quote("c d.txt"), "close"), "sha256": sha(c).upper()},
        ],
    )

    assert (root / "a.bin").read_bytes() == a
    assert (root / "bee.bin").read_bytes() == b
    assert (root / "c d.txt").read_bytes() == c
    assert listing(root) == ["a.bin", "bee.bin", "c d.txt"]  # no partial file left
    assert {k: result[k] for k in ("files", "downloaded", "already_present", "failed")} == {
        "files": 3,
        "downloaded": 3,
        "already_present": 0,
        "failed": 0,
    }
    assert result["bytes_downloaded"] == result["bytes_total"] == len(a) + len(b) + len(c)
    assert result["failures"] == []
    # One report per file, the last one complete.
    assert [(p.done, p.total) for p in control.reports] == [(1, 3), (2, 3), (3, 3)]
    assert file_server.requests == {"a.bin": 1, "b.bin": 1, "c d.txt": 1}


@pytest.mark.parametrize("concurrency", [1, 3])
def test_at_most_concurrency_downloads_at_once(job, root: Path, file_server, concurrency):
    for i in range(8):
        serve(file_server, f"f{i}", 10 * KIB)
    # Each request waits until `concurrency` are in flight (or all 8 came): a client that
    # allowed more would show more at once.
    file_server.hold = (concurrency, 8)

    result = run(
        job,
        directory=str(root),
        files=[file_server.file_url(f"f{i}") for i in range(8)],
        concurrency=concurrency,
    )

    assert result["downloaded"] == 8
    assert file_server.most_in_flight == concurrency


# --- size caps ------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["files", "chunked", "close"])
def test_a_file_over_the_cap_is_refused_while_it_streams(job, root: Path, file_server, route):
    small = serve(file_server, "small", 10 * KIB)
    serve(file_server, "big", 300 * KIB)

    with pytest.raises(FileJobError) as caught:
        run(
            job,
            directory=str(root),
            files=[file_server.file_url("small", route), file_server.file_url("big", route)],
            max_file_mb=100 / 1024,  # 100 KiB
        )

    message = str(caught.value)
    assert "1 of 2 files not downloaded" in message
    assert "big: larger than max_file_mb (100.0 KiB)" in message
    assert listing(root) == ["small"]  # nothing of the big one, not even a partial file
    assert (root / "small").read_bytes() == small
    assert not job.retry.is_retryable(caught.value)


def test_an_announced_length_over_the_cap_is_refused_before_reading(job, root: Path, file_server):
    serve(file_server, "big", 300 * KIB)

    with pytest.raises(FileJobError, match=r"the server announces 300\.0 KiB"):
        run(job, directory=str(root), files=[file_server.file_url("big")], max_file_mb=0.1)

    assert listing(root) == []


def test_the_total_cap_stops_the_downloads(job, root: Path, file_server):
    for i in range(6):
        serve(file_server, f"f{i}", 100 * KIB)

    with pytest.raises(FileJobError) as caught:
        run(
            job,
            directory=str(root),
            files=[file_server.file_url(f"f{i}", "chunked") for i in range(6)],
            max_total_mb=250 / 1024,
            concurrency=1,
        )

    assert listing(root) == ["f0", "f1"]  # the third would pass 250 KiB
    message = str(caught.value)
    assert "4 of 6 files not downloaded" in message
    assert "f2: the files together would exceed max_total_mb (250.0 KiB)" in message
    assert "f3: not downloaded: the total cap (max_total_mb) was reached" in message
    assert file_server.requests["f5"] == 0  # never asked for


def test_files_already_there_count_toward_the_total_cap(job, root: Path, file_server):
    (root / "old").write_bytes(b"x" * 200 * KIB)
    serve(file_server, "old", 200 * KIB)
    serve(file_server, "new", 100 * KIB)

    with pytest.raises(FileJobError, match="new: the files together would exceed"):
        run(
            job,
            directory=str(root),
            files=[file_server.file_url("old"), file_server.file_url("new")],
            max_total_mb=250 / 1024,
            concurrency=1,
        )

    assert listing(root) == ["old"]


def test_a_body_cut_short_is_retried_and_leaves_nothing(job, root: Path, file_server):
    serve(file_server, "cut", 50 * KIB)

    with pytest.raises(RetryableError) as caught:
        run(job, directory=str(root), files=[file_server.file_url("cut", "short")])

    assert (
        f"cut: {file_server.url}/short/cut: the connection broke off: Connection broken: "
        "IncompleteRead(51200 bytes read, 51201 more expected)"
    ) in str(caught.value)
    assert job.retry.is_retryable(caught.value)
    assert listing(root) == []


# --- checksums ------------------------------------------------------------------------------
def test_a_checksum_mismatch_fails_and_keeps_nothing(job, root: Path, file_server):
    data = serve(file_server, "a", 20 * KIB)

    with pytest.raises(FileJobError) as caught:
        run(
            job,
            directory=str(root),
            files=[{"url": file_server.file_url("a"), "sha256": "0" * 64}],
        )

    assert f"a: checksum mismatch: got sha256 {sha(data)}" in str(caught.value)
    assert listing(root) == []


# --- resuming -------------------------------------------------------------------------------
def test_after_a_crash_complete_files_are_skipped_and_partial_ones_redone(
    job, root: Path, file_server
):
    done = serve(file_server, "done", 40 * KIB)
    checked = serve(file_server, "checked", 40 * KIB)
    half = serve(file_server, "half", 40 * KIB)
    # What a crashed run left: two complete files and one partial file.
    (root / "done").write_bytes(done)
    (root / "checked").write_bytes(checked)
    (root / ".half.partial").write_bytes(half[:1000] + b"garbage")

    result = run(
        job,
        directory=str(root),
        files=[
            file_server.file_url("done"),
            {"url": file_server.file_url("checked"), "sha256": sha(checked)},
            {"url": file_server.file_url("half"), "sha256": sha(half)},
        ],
    )

    assert (result["downloaded"], result["already_present"]) == (1, 2)
    assert result["bytes_downloaded"] == len(half)
    assert result["bytes_total"] == len(done) + len(checked) + len(half)
    assert file_server.requests == {"half": 1}
    assert (root / "half").read_bytes() == half
    assert listing(root) == ["checked", "done", "half"]


def test_a_file_there_with_other_content_is_not_replaced(job, root: Path, file_server):
    data = serve(file_server, "a", 10 * KIB)
    (root / "a").write_bytes(b"someone else's file")

    with pytest.raises(FileJobError, match="a: a file with other content"):
        run(
            job,
            directory=str(root),
            files=[{"url": file_server.file_url("a"), "sha256": sha(data)}],
        )

    assert (root / "a").read_bytes() == b"someone else's file"
    assert file_server.requests["a"] == 0


def test_a_name_taken_by_a_directory_fails_that_file(job, root: Path, file_server):
    serve(file_server, "a", 10)
    (root / "a").mkdir()

    with pytest.raises(FileJobError, match="a: the name is taken by something that is not"):
        run(job, directory=str(root), files=[file_server.file_url("a")])

    assert (root / "a").is_dir()


def test_a_symlink_in_the_way_is_never_followed(job, root: Path, file_server, tmp_path: Path):
    serve(file_server, "a", 10)
    serve(file_server, "b", 10)
    victim = tmp_path / "outside" / "victim"
    victim.write_text("outside the allowlist")
    (root / "a").symlink_to(victim)  # the name itself
    (root / ".b.partial").symlink_to(victim)  # the partial name a download writes to

    with pytest.raises(FileJobError) as caught:
        run(job, directory=str(root), files=[file_server.file_url("a"), file_server.file_url("b")])

    message = str(caught.value)
    assert "a: the name is taken by something that is not a regular file" in message
    assert "b: cannot write it here: Too many levels of symbolic links" in message
    assert victim.read_text() == "outside the allowlist"


def test_a_file_another_run_is_writing_is_left_to_it(job, root: Path, file_server):
    serve(file_server, "a", 10)
    partial = root / ".a.partial"
    partial.write_bytes(b"being written")
    fd = os.open(partial, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the other run's download holds it
        with pytest.raises(RetryableError, match="a: another run is writing it right now"):
            run(job, directory=str(root), files=[file_server.file_url("a")])
    finally:
        os.close(fd)

    assert partial.read_bytes() == b"being written"
    assert file_server.requests["a"] == 0


def test_a_retry_downloads_only_what_failed(job, root: Path, file_server):
    good = [serve(file_server, f"good{i}", 20 * KIB) for i in range(3)]
    flaky = serve(file_server, "flaky", 20 * KIB)
    files = [file_server.file_url(f"good{i}") for i in range(3)]
    files.append(file_server.file_url("flaky", "flaky"))  # 503 once, then the file

    with pytest.raises(RetryableError) as caught:
        run(job, directory=str(root), files=files)
    assert "1 of 4 files not downloaded" in str(caught.value)
    assert "flaky: HTTP 503" in str(caught.value)
    assert listing(root) == ["good0", "good1", "good2"]

    result = run(job, attempt=2, directory=str(root), files=files)

    assert (result["downloaded"], result["already_present"]) == (1, 3)
    assert file_server.requests == {"good0": 1, "good1": 1, "good2": 1, "flaky": 2}
    assert [(root / f"good{i}").read_bytes() for i in range(3)] == good
    assert (root / "flaky").read_bytes() == flaky


@pytest.mark.parametrize(("status", "error"), [(404, FileJobError), (503, RetryableError)])
def test_an_error_status_fails_the_file(job, root: Path, file_server, status, error):
    with pytest.raises(error, match=f"x: HTTP {status}"):
        run(
            job,
            directory=str(root),
            files=[{"url": f"{file_server.url}/status/{status}/x", "name": "x"}],
        )
    assert listing(root) == []


def test_allow_failures_succeeds_and_lists_them(job, root: Path, file_server):
    serve(file_server, "ok", 10)
    files = [file_server.file_url("ok"), file_server.file_url("missing")]

    result = run(job, directory=str(root), files=files, allow_failures=True)

    assert (result["downloaded"], result["failed"]) == (1, 1)
    assert result["failures"] == [{"name": "missing", "error": "HTTP 404"}]
    assert listing(root) == ["ok"]


def test_allow_failures_still_retries_a_network_error_while_attempts_remain(
    job, root: Path, file_server
):
    files = [{"url": f"{file_server.url}/status/503/x", "name": "x"}]
    with pytest.raises(RetryableError):
        run(job, attempt=1, directory=str(root), files=files, allow_failures=True)

    result = run(job, attempt=3, directory=str(root), files=files, allow_failures=True)

    assert result["failures"] == [{"name": "x", "error": "HTTP 503"}]


# --- destinations ---------------------------------------------------------------------------
def test_a_redirect_is_followed_through_the_policy(job, root: Path, file_server):
    data = serve(file_server, "a", 10 * KIB)
    target = quote(file_server.file_url("a"), safe="")

    run(
        job,
        directory=str(root),
        files=[{"url": f"{file_server.url}/goto?to={target}", "name": "a"}],
    )

    assert (root / "a").read_bytes() == data


@pytest.mark.parametrize(
    "where",
    [
        "http://169.254.169.254/latest/meta-data",  # cloud metadata: refused by default
        "http://localhost:{port}/files/a",  # JOBS_HTTP_DENY names it
    ],
)
def test_a_redirect_to_a_refused_destination_is_refused(
    job, root: Path, file_server, settings, where
):
    settings.JOBS_HTTP_DENY = ["localhost"]
    serve(file_server, "a", 10)
    port = file_server.url.rsplit(":", 1)[1]
    target = quote(where.format(port=port), safe="")

    with pytest.raises(FileJobError) as caught:
        run(
            job,
            directory=str(root),
            files=[{"url": f"{file_server.url}/goto?to={target}", "name": "a"}],
        )

    assert "refused" in str(caught.value)
    assert not job.retry.is_retryable(caught.value)
    assert listing(root) == []
    assert file_server.requests["a"] == 0


def test_a_redirect_to_another_scheme_is_refused(job, root: Path, file_server):
    target = quote("file:///etc/passwd", safe="")

    with pytest.raises(FileJobError, match="redirected to a URL that is not http"):
        run(
            job,
            directory=str(root),
            files=[{"url": f"{file_server.url}/goto?to={target}", "name": "p"}],
        )

    assert listing(root) == []


# --- cancellation ---------------------------------------------------------------------------
def test_cancelled_between_files(job, root: Path, file_server, unthrottled):
    for i in range(6):
        serve(file_server, f"f{i}", 10 * KIB)
    control = Control(cancel_when=lambda c: len(c.reports) >= 2)

    with pytest.raises(JobCancelled):
        run(
            job,
            control,
            directory=str(root),
            files=[file_server.file_url(f"f{i}") for i in range(6)],
            concurrency=1,
        )

    assert listing(root) == ["f0", "f1"]
    assert sum(file_server.requests.values()) == 2


# --- bad input ------------------------------------------------------------------------------
def refused(job, params: dict, field: str) -> str:
    with pytest.raises(ParameterError) as caught:
        job.validate(params)
    assert_field_error(caught.value, NAME, field)
    return " ".join(caught.value.by_field()[field])


@pytest.mark.parametrize(
    ("files", "field", "message"),
    [
        ([], "files", "at least 1 item"),
        (["file:///etc/passwd"], "files.0.url", "must be an http:// or https:// URL"),
        (["ftp://example.org/a"], "files.0.url", "must be an http:// or https:// URL"),
        (["http://user:pw@example.org/a"], "files.0.url", "must not carry credentials"),
        (["http://169.254.169.254/a"], "files.0.url", "cloud metadata"),
        ([{"url": "http://example.org/a", "sha256": "abc"}], "files.0.sha256", "64 hex"),
        ([{"url": "http://example.org/a", "sha256": "g" * 64}], "files.0.sha256", "64 hex"),
        ([{"url": "http://example.org/a", "name": "../a"}], "files.0.name", "without '/'"),
        ([{"url": "http://example.org/a", "name": ".."}], "files.0.name", "not empty"),
        ([{"url": "http://example.org/a", "name": ".a.partial"}], "files.0.name", "unfinished"),
        ([{"url": "http://example.org/a", "colour": "red"}], "files.0.colour", "Extra inputs"),
        ([{"name": "a"}], "files.0.url", "required"),
        (["http://example.org/"], "files", "item 0: its URL ends in no usable file name"),
        (
            ["http://example.org/a.txt", "http://example.com/b/a.txt"],
            "files",
            "items 0 and 1 would both be saved as 'a.txt'",
        ),
        (
            ["http://example.org/x", {"url": "http://example.org/y", "name": "X"}],
            "files",
            "items 0 and 1 would both be saved as 'X'",
        ),
    ],
)
def test_bad_files_are_refused(job, root: Path, files, field, message):
    assert message in refused(job, {"directory": str(root), "files": files}, field)


def test_bad_directories_and_limits_are_refused(job, root: Path, tmp_path: Path):
    files = ["http://example.org/a"]
    assert "not an existing directory" in refused(
        job, {"directory": str(root / "nope"), "files": files}, "directory"
    )
    assert "outside the directories file jobs may touch" in refused(
        job, {"directory": str(tmp_path / "outside"), "files": files}, "directory"
    )
    assert "absolute path" in refused(job, {"directory": "root", "files": files}, "directory")
    base = {"directory": str(root), "files": files}
    assert "less than or equal to 16" in refused(job, {**base, "concurrency": 17}, "concurrency")
    assert "greater than or equal to 1" in refused(job, {**base, "concurrency": 0}, "concurrency")
    assert "greater than 0" in refused(job, {**base, "max_file_mb": 0}, "max_file_mb")
    assert "finite" in refused(job, {**base, "max_total_mb": "inf"}, "max_total_mb")


def test_bad_input_writes_nothing_and_asks_nothing(job, root: Path, file_server):
    serve(file_server, "a", 10)
    before = snapshot(root)

    with pytest.raises(ParameterError):
        run(job, directory=str(root), files=[file_server.file_url("a"), file_server.file_url("a")])

    assert snapshot(root) == before
    assert file_server.paths == []


def test_names_are_kept_in_the_validated_parameters(job, root: Path):
    params = job.validate({"directory": str(root), "files": ["http://example.org/x/a%20b.txt"]})

    assert params["files"] == [
        {"url": "http://example.org/x/a%20b.txt", "name": "a b.txt", "sha256": None}
    ]


def test_a_server_that_is_not_there_is_retried(job, root: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed.

    with pytest.raises(RetryableError) as caught:
        run(job, directory=str(root), files=[f"http://127.0.0.1:{port}/a"], timeout=2)

    assert f"a: http://127.0.0.1:{port}/a: cannot connect: Connection refused" in str(caught.value)
    assert listing(root) == []
