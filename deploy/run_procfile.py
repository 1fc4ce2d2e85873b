"""Run the Procfile with honcho (``make run`` does), stopping processes the way systemd's
``KillMode=mixed`` does.

    python deploy/run_procfile.py start --port 8000      (any honcho arguments)

On Ctrl-C honcho sends SIGTERM to each process *group* and SIGKILL 5 s later. Neither suits a
Celery prefork worker: a pool process killed directly can die holding the pool's queue lock,
and the worker then hangs on exit; and its warm shutdown on the embedded broker (which hands
unacknowledged messages back to the queue) takes about 6 s. So each process's main process
alone gets SIGTERM (gunicorn and Celery stop their own children), and whatever is left of
its group gets SIGKILL only after STOP_TIMEOUT seconds.
"""

from __future__ import annotations

import errno
import os
import signal

import honcho.command
import honcho.compat
import honcho.manager

STOP_TIMEOUT = 20


def terminate_main_process(self: honcho.compat.ProcessManager, pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ESRCH):
            raise


def main() -> None:
    honcho.compat.ProcessManager.terminate = terminate_main_process
    honcho.manager.KILL_WAIT = STOP_TIMEOUT
    honcho.command.main()


if __name__ == "__main__":
    main()
