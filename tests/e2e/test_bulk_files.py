"""The bulk file jobs through a real ``celery worker``: files downloaded from a local HTTP
server (one of them failing once, so the retry policy retries and the retry fetches only
that one), then archived; the files on disk and the runs' stored results checked."""

from __future__ import annotations

import os
import zipfile

import pytest

from scheduler.runs.models import JobRun
from tests.builtin.file_server import serving
from tests.support.processes import celery_worker, wait_for
from tests.support.runs import attempts, over, run_now

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
FILES = 12


def test_download_then_archive(platform, client_app, settings):
    base = platform.tmp_path / "files"
    served, downloads, archives = base / "served", base / "downloads", base / "archives"
    for path in (served, downloads, archives):
        path.mkdir(parents=True)
    for i in range(FILES):
        (served / f"f{i:02}.bin").write_bytes(os.urandom(100_000 + i))
    settings.JOBS_FILE_ROOTS = [str(base)]  # this process validates the parameters too
    env = {**platform.env, "JOBS_FILE_ROOTS": str(base), "JOBS_HTTP_ALLOW": "127.0.0.1"}

    with serving(served) as server, celery_worker(platform.tmp_path, env, platform.queue):
        urls = [server.file_url(f"f{i:02}.bin") for i in range(FILES - 1)]
        urls.append(server.file_url(f"f{FILES - 1:02}.bin", "flaky"))  # 503 the first time
        download = run_now(
            client_app,
            platform.queue,
            "builtin.download_files",
            {"directory": str(downloads), "files": urls, "concurrency": 3},
        )
        wait_for(lambda: over(download), 60, "the downloads to end")
        archive = run_now(
            client_app,
            platform.queue,
            "builtin.archive_directory",
            {"directory": str(downloads), "destination": str(archives), "name": "all.zip"},
        )
        wait_for(lambda: over(archive), 60, "the archive to be written")

    first, second = attempts(download)
    assert (first.status, second.status) == (JobRun.Status.RETRYING, JobRun.Status.SUCCEEDED)
    assert "1 of 12 files not downloaded" in first.error_message
    assert "f11.bin: HTTP 503" in first.error_message
    # The retry fetched the one file that failed, and skipped the eleven already there.
    for stored in ("'downloaded': 1,", "'already_present': 11,", "'failed': 0,", "'files': 12"):
        assert stored in second.result
    assert server.requests == {**{f"f{i:02}.bin": 1 for i in range(FILES - 1)}, "f11.bin": 2}
    assert sorted(os.listdir(downloads)) == sorted(os.listdir(served))  # no partial file
    for name in os.listdir(served):
        assert (downloads / name).read_bytes() == (served / name).read_bytes()

    [packed] = attempts(archive)
    assert packed.status == JobRun.Status.SUCCEEDED
    assert "'format': 'zip'" in packed.result and "'files': 12," in packed.result
    assert os.listdir(archives) == ["all.zip"]
    with zipfile.ZipFile(archives / "all.zip") as z:
        assert sorted(z.namelist()) == sorted(os.listdir(served))
        assert z.read("f03.bin") == (served / "f03.bin").read_bytes()
