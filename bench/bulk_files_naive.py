"""The baseline of ``bench.bulk_files``: a plain Celery task written the obvious way,
``requests`` to fetch each file and ``zipfile`` to pack them in memory, then one write."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import requests
from celery import shared_task


@shared_task(name="bench.naive_download_and_zip", ignore_result=True)
def naive_download_and_zip(urls: list[str], archive_path: str, done_path: str) -> None:
    started = time.time()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for url in urls:
            response = requests.get(url, timeout=60)
            response.raise_for_status()
            archive.writestr(url.rsplit("/", 1)[-1], response.content)
    Path(archive_path).write_bytes(buffer.getvalue())
    # The benchmark waits for this file: the task's end, without a result backend.
    Path(done_path).write_text(json.dumps({"started": started, "finished": time.time()}))
