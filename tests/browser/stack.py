"""The platform as ``make run`` starts it, for a browser: gunicorn serving the admin (static
files collected, DEBUG off), with a celery worker and celery beat, all on the test database
and the platform's broker and queue."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.platform import Platform
from tests.support.processes import ROOT, Process, celery_beat, celery_worker, wait_for
from tests.support.servers import free_port

#: Seconds each process may take to come up (they start at once on a small machine).
STARTUP_TIMEOUT = 60


@dataclass
class Site:
    """A running web server (and, for a whole stack, its worker and beat)."""

    base_url: str
    platform: Platform
    processes: dict[str, Process] = field(default_factory=dict)

    def logs(self) -> str:
        """The end of every process's log, for a failure message."""
        return "\n".join(
            f"--- {name} ({process.log}) ---\n{process.output()[-2000:]}"
            for name, process in self.processes.items()
        )


def collect_static(root: Path, env: dict[str, str]) -> None:
    """``manage.py collectstatic`` into ``root``, as ``make run`` does before serving."""
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env={**env, "STATIC_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode:
        raise AssertionError(f"collectstatic failed:\n{done.stdout}\n{done.stderr[-3000:]}")


def site_env(platform: Platform, static_root: Path) -> dict[str, str]:
    return {
        **platform.env,
        "DEBUG": "false",
        "STATIC_ROOT": str(static_root),
        "SECURE_COOKIES": "false",  # plain HTTP on 127.0.0.1
        "ALERTS_QUEUE": platform.queue,  # alerts go to the worker that takes the test's queue
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.HTTPError):
        return False


def start_web(tmp_path: Path, env: dict[str, str]) -> tuple[Process, str]:
    """gunicorn, as the Procfile runs it, on a free port: the process and its base URL."""
    port = free_port()
    args = [
        *(sys.executable, "-m", "gunicorn", "config.wsgi"),
        *("--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"),
        *("--graceful-timeout", "5", "--access-logfile", "-"),
    ]
    return Process(args, env, tmp_path / "web.log"), f"http://127.0.0.1:{port}"


def wait_for_web(web: Process, base_url: str) -> None:
    def up() -> bool:
        if web.popen.poll() is not None:
            raise AssertionError(f"gunicorn exited early:\n{web.output()[-3000:]}")
        return _answers(f"{base_url}/admin/login/")

    wait_for(up, STARTUP_TIMEOUT, "gunicorn to serve the admin's login page", poll=0.1)


def stop_together(processes: list[Process]) -> None:
    """Each gets SIGTERM and shuts down gracefully, all at once rather than in turn (the
    helpers' own stops then find them ended)."""
    with ThreadPoolExecutor(len(processes)) as pool:
        list(pool.map(Process.stop, processes))


@contextmanager
def running_site(platform: Platform, static_root: Path, celery: bool = True) -> Iterator[Site]:
    """The web server, and with ``celery`` a worker on the platform's queue and beat, started
    together (their start-ups overlap) and stopped together at the end."""
    env = site_env(platform, static_root)
    tmp_path = platform.tmp_path
    web, base_url = start_web(tmp_path, env)
    site = Site(base_url, platform, {"web": web})
    with ExitStack() as started:
        try:
            if celery:
                beat = started.enter_context(celery_beat(tmp_path, env, wait=False))
                site.processes["beat"] = beat
                site.processes["worker"] = started.enter_context(
                    celery_worker(tmp_path, env, queues=platform.queue)
                )
                beat.wait_for_output("entries updated at start", timeout=STARTUP_TIMEOUT)
            wait_for_web(web, base_url)
            yield site
        finally:
            stop_together(list(site.processes.values()))
