"""Named places where a test may stop beat, to prove what a crash there does.

``SCHEDULER_FAILPOINT=after_commit:/path/marker`` makes beat, once it has committed a batch
of occurrences and before it publishes them, create the marker file and hang, so the test
can kill it with SIGKILL at exactly that point; ``before_commit`` does the same with the
batch's transaction still open. Unset in production: then this is a no-op.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def reach(name: str) -> None:
    spec = os.environ.get("SCHEDULER_FAILPOINT", "")
    if not spec:
        return
    point, _, marker = spec.partition(":")
    if point != name:
        return
    Path(marker).write_text(str(os.getpid()))
    while True:  # wait to be killed
        time.sleep(1)
