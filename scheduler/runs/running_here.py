"""Is an attempt marked running still running in this very worker?

A redelivered message of an attempt marked running usually means its worker died. Not when
the worker only lost its broker connection: RabbitMQ requeues the unacknowledged message at
once (and Redis does when it can restore it), and the worker, reconnected, may receive it
while the first delivery still runs in another of its pool processes. That attempt is not
lost; running it again would run the job twice.

Only this worker's own processes are checked here (same node name, a live sibling process of
the caller's pool). Whether a run on another worker is alive takes worker heartbeats.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def still_running_here(worker_host: str, worker_pid: int | None, hostname: str) -> bool:
    """The attempt recorded as running on node ``worker_host`` in process ``worker_pid``
    runs in a live pool process of this worker (node ``hostname``), other than the
    calling one (a process that takes a message has finished whatever it ran before)."""
    if not worker_pid or not hostname or worker_host != hostname or worker_pid == os.getpid():
        return False
    return _parent_of(worker_pid) == os.getppid()


def _parent_of(pid: int) -> int | None:
    """The parent of live process ``pid`` (None if there is no such process)."""
    if not PROC.is_dir():  # no /proc here: a live process is taken for a sibling
        return os.getppid() if _alive(pid) else None
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone
        return None
    # "pid (command) state ppid ...": the command may hold spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
