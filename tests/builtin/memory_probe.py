"""Runs file jobs in a process of its own and prints how much each one raised its peak
resident memory, as JSON: ``{"<job>": <KiB above the resident memory before it>}``.

    python -m tests.builtin.memory_probe '[["builtin.archive_directory", {...}], ...]'

The peak is reset before each job (``/proc/self/clear_refs``, Linux), so each figure is
that job's own. Needs DJANGO_SETTINGS_MODULE and JOBS_FILE_ROOTS in the environment.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

STATUS = Path("/proc/self/status")


def kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", STATUS.read_text(), re.M)
    assert found, field
    return int(found.group(1))


def main() -> int:
    import django

    django.setup()
    from jobs_catalog.context import JobContext
    from jobs_catalog.discovery import discover
    from jobs_catalog.registry import registry

    discover(registry)
    growth = {}
    for name, params in json.loads(sys.argv[1]):
        job = registry.get(name)
        Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from now
        before = kib("VmRSS")
        job.call(params, JobContext(job=name))
        growth[name] = kib("VmHWM") - before
    print(json.dumps(growth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
