"""``make run``, end to end: with nothing configured (SQLite and the filesystem broker under a
fresh DATA_DIR), migrate and the demo command set things up, honcho starts web + worker +
beat from the Procfile, the admin serves its login page and static files, the printed demo
password signs in, beat sends a demo job that the worker runs, and Ctrl-C (SIGINT to honcho)
stops every process without anything being killed."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from scheduler.management.commands.demo import DEMO_FILES_DIRNAME, HEALTH_CHECK_NAME
from tests.support.processes import ROOT, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

#: What would take the platform off its embedded defaults (the test process's own settings
#: module included: the platform runs on config.settings).
NOT_INHERITED = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_BEAT_SCHEDULER",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "EXTRA_INSTALLED_APPS",
)
STARTUP_TIMEOUT = 30
STOP_TIMEOUT = 20
JOB_SUCCEEDED = re.compile(r"Task builtin\.http_request\[[0-9a-f-]+\] succeeded")
STARTED = re.compile(r"(\S+) started \(pid=(\d+)\)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def platform_env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        DATA_DIR=str(data_dir),
        STATIC_ROOT=str(data_dir / "static"),
        JOBS_FILE_ROOTS=str(data_dir / DEMO_FILES_DIRNAME),
        JOBS_HTTP_ALLOW="127.0.0.1",  # as the Makefile sets it, for the health check demo
        DEBUG="false",
        LOG_LEVEL="INFO",
        PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def get(url: str, opener: urllib.request.OpenerDirector | None = None, data: bytes | None = None):
    """(status, final URL, headers, body) of a request; never raises on an HTTP status."""
    try:
        with (opener or urllib.request.build_opener()).open(url, data=data, timeout=10) as resp:
            return resp.status, resp.url, resp.headers, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, url, exc.headers, exc.read().decode("utf-8", "replace")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def test_make_run_serves_the_admin_runs_demo_jobs_and_stops_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = platform_env(data_dir, port)

    # What `make run` does before starting the processes.
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    demo_output = manage(env, "demo", "--base-url", base)
    assert "Skipped demo" not in demo_output, demo_output
    assert f"Created demo schedule {HEALTH_CHECK_NAME!r}" in demo_output, demo_output
    password = re.search(r"password: (\S+)", demo_output)
    assert password, f"no password in the demo output:\n{demo_output}"

    log_path = tmp_path / "honcho.log"
    log_file = log_path.open("wb")
    honcho = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "deploy" / "run_procfile.py"),  # honcho, as the Makefile runs it
            "start",
            "--port",
            str(port),
            "--no-colour",
            "--env",
            os.devnull,  # a developer's .env must not change what is tested
            "--app-root",
            str(ROOT),
        ],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def log() -> str:
        return log_path.read_text(errors="replace")

    def with_log(message: str) -> str:
        return f"{message}\n--- honcho output (end) ---\n{log()[-6000:]}"

    groups: dict[str, int] = {}
    try:

        def all_started() -> bool:
            groups.update({name: int(pid) for name, pid in STARTED.findall(log())})
            assert honcho.poll() is None, with_log("honcho exited early")
            return {"web.1", "worker.1", "beat.1"} <= groups.keys()

        wait_for(all_started, STARTUP_TIMEOUT, "honcho to start web, worker and beat", poll=0.2)

        # The admin login page, with DEBUG off, and its stylesheet (served by WhiteNoise).
        def login_page() -> str | None:
            try:
                status, _, _, body = get(f"{base}/admin/login/")
            except OSError:
                return None
            assert status == 200, with_log(f"GET /admin/login/ answered {status}")
            return body

        page = wait_for(login_page, STARTUP_TIMEOUT, "the admin login page", poll=0.2)
        css = re.search(r'<link[^>]+href="([^"]+\.css)"', page)
        assert css, f"no stylesheet on the login page:\n{page[:2000]}"
        status, _, headers, body = get(urllib.parse.urljoin(base, css.group(1)))
        assert status == 200, with_log(f"GET {css.group(1)} answered {status}")
        assert headers.get_content_type() == "text/css" and body.strip()

        # Signing in with the printed password.
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        _, _, _, form = get(f"{base}/admin/login/?next=/admin/", opener)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert token, form[:2000]
        fields = {
            "csrfmiddlewaretoken": token.group(1),
            "username": "admin",
            "password": password.group(1),
            "next": "/admin/",
        }
        status, url, _, home = get(
            f"{base}/admin/login/?next=/admin/", opener, urllib.parse.urlencode(fields).encode()
        )
        assert status == 200 and urllib.parse.urlsplit(url).path == "/admin/", (status, url)
        # The overview, with the demo's processes alive on it.
        assert "<title>Overview | Scheduled jobs</title>" in home and 'id="ov-history"' in home

        # Beat sends the every-minute health check at the next minute boundary and the worker
        # runs it (a GET of the login page above): allow until then, plus some slack.
        job_timeout = 60 - time.time() % 60 + 20
        wait_for(
            lambda: JOB_SUCCEEDED.search(log()),
            job_timeout,
            "the worker to run builtin.http_request sent by beat",
            poll=0.2,
        )

        # Ctrl-C: all three stop on SIGTERM, none needing SIGKILL.
        honcho.send_signal(signal.SIGINT)
        try:
            honcho.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(with_log(f"honcho still running {STOP_TIMEOUT}s after SIGINT"))
        output = log()
        assert "SIGKILL" not in output, with_log("a process had to be killed")
        for name in groups:
            assert re.search(rf"{re.escape(name)} stopped \(rc=0\)", output), with_log(
                f"{name} did not exit cleanly"
            )
        wait_for(
            lambda: not any(group_alive(pgid) for pgid in groups.values()),
            5,
            "every child process to be gone",
            poll=0.1,
        )
    except AssertionError as exc:
        if "--- honcho output" not in str(exc):
            raise AssertionError(with_log(str(exc))) from None
        raise
    finally:
        for pgid in [honcho.pid, *groups.values()]:
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        honcho.wait(10)
        log_file.close()
