"""The bulk file jobs stream: downloading, archiving and extracting 200 MiB raise a process's
peak resident memory by a few MiB, not by the data's size (measured in a process of its own,
see tests/builtin/memory_probe.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builtin.file_server import FileServer
from tests.support.processes import ROOT

MIB = 1024 * 1024
FILES = 40
FILE_MB = 5  # 200 MiB in all
#: Growth allowed per job, MiB (about 3 measured): buffers, threads, the listing; a job that held
#: the data would grow by 200.
LIMIT_MB = 20

pytestmark = pytest.mark.timeout(240)


def test_memory_stays_flat(root: Path, file_server: FileServer, tmp_path: Path):
    for i in range(FILES):
        (file_server.root / f"f{i:02}.bin").write_bytes(os.urandom(FILE_MB * MIB))
    downloads, out, back = root / "downloads", root / "out", root / "back"
    for path in (downloads, out, back):
        path.mkdir()
    jobs = [
        (
            "builtin.download_files",
            {
                "directory": str(downloads),
                "files": [file_server.file_url(f"f{i:02}.bin") for i in range(FILES)],
            },
        ),
        (
            "builtin.archive_directory",
            {"directory": str(downloads), "destination": str(out), "name": "all.zip"},
        ),
        ("builtin.extract_archive", {"archive": str(out / "all.zip"), "destination": str(back)}),
    ]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "JOBS_FILE_ROOTS": str(root),
        "JOBS_HTTP_ALLOW": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }

    done = subprocess.run(
        [sys.executable, "-m", "tests.builtin.memory_probe", json.dumps(jobs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    growth_mb = {name: kib / 1024 for name, kib in json.loads(done.stdout).items()}
    assert set(growth_mb) == {name for name, _ in jobs}
    assert all(mb < LIMIT_MB for mb in growth_mb.values()), growth_mb
    # The jobs did the work whose memory was measured.
    assert len(os.listdir(back)) == FILES
    assert (back / "f07.bin").read_bytes() == (file_server.root / "f07.bin").read_bytes()
    assert (out / "all.zip").stat().st_size > FILES * FILE_MB * MIB
