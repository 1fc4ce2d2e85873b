"""Deploy smoke test: the production command lines, as the Procfile writes them, on PostgreSQL
and Redis, after the release steps the recipes run (migrate on an empty database, collectstatic
as the image's build does), with the metrics settings the recipes give each service.

Then: gunicorn answers /healthz and /readyz (database, migrations, broker) and, with DEBUG off,
the admin's page and its stylesheet (WhiteNoise); /metrics needs the token; the worker's and
beat's exporters answer; a catalog job run through the platform's own "run now" is run by the
worker and counted on its exporter; and each service stops cleanly on SIGTERM to its main
process (systemd's KillMode=mixed). tests/test_deploy_recipes.py holds the systemd units, the
Kubernetes manifests, the compose file and the image to the same command lines.

Needs DATABASE_URL (PostgreSQL, a user that may create databases) and REDIS_URL:

    pytest tests/e2e/test_deploy_smoke.py
"""

from __future__ import annotations

import gzip
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from kombu import Connection

from tests.support import recipes
from tests.support.databases import scratch_database
from tests.support.http import Response, fetch
from tests.support.metrics import sample, scrape
from tests.support.processes import ROOT, Process, wait_for
from tests.support.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis, pytest.mark.timeout(300)]

T = TypeVar("T")

#: A built-in job that needs no setting and no server: clearsessions is allowed by default.
JOB = "builtin.management_command"
PARAMS = {"command": "clearsessions"}
#: The queue the Procfile's worker consumes (it names none: Celery's default).
DEFAULT_QUEUE = "celery"
START_TIMEOUT = 60
#: Seconds each service gets to stop after SIGTERM (the systemd units give web and beat 30).
STOP_TIMEOUT = 30
#: What the services inherit from the test's environment; everything else is set here, so a
#: developer's variables (METRICS_ALLOW, DEBUG, ...) cannot change what is tested.
INHERITED = ("HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "USER")


def release_env(tmp_path: Path, database_url: str, token: str) -> dict[str, str]:
    """The environment every service shares (deploy/env.example's, production-like)."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    bin_dir = str(Path(sys.executable).parent)  # gunicorn and celery, as installed
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=os.environ["REDIS_URL"],
        SECRET_KEY=secrets.token_urlsafe(40),
        DATA_DIR=str(tmp_path / "data"),
        STATIC_ROOT=str(tmp_path / "static"),
        METRICS_TOKEN=token,
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


def service_env(service: str, shared: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``shared`` plus the metrics variables the recipes set for ``service``, with a free
    port and an empty directory of its own."""
    env = dict(shared)
    for name in recipes.metrics_variables(service):
        if name == "METRICS_PORT":
            env[name] = str(free_port())
            # On loopback alone here (the recipes leave the default: every interface).
            env["METRICS_ADDR"] = "127.0.0.1"
        elif name == "PROMETHEUS_MULTIPROC_DIR":
            directory = tmp_path / f"prometheus-{service}"
            directory.mkdir()
            env[name] = str(directory)
        elif name != "METRICS_ADDR":
            raise AssertionError(f"the recipes set {name} for {service}: set it here too")
    if service == "web":
        env["PORT"] = str(free_port())  # the Procfile binds 127.0.0.1:$PORT
    return env


def release_step(argv: tuple[str, ...], env: dict[str, str]) -> str:
    """Run a one-shot command to its end; its standard output."""
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(argv)} failed ({done.returncode}):\n{output[-3000:]}"
    return done.stdout


def purge_default_queue(broker_url: str) -> None:
    with Connection(broker_url, connect_timeout=5) as connection:
        connection.default_channel.queue_purge(DEFAULT_QUEUE)


@contextmanager
def procfile_process(name: str, env: dict[str, str], tmp_path: Path) -> Iterator[Process]:
    """The Procfile's ``name`` line run as honcho runs it (``sh -c``; it execs the server, so
    the pid is the server's). Stopped, and its group killed, whatever happens."""
    process = Process(["/bin/sh", "-c", recipes.procfile_lines()[name]], env, tmp_path / name)
    try:
        yield process
    finally:
        process.stop(STOP_TIMEOUT, main_only=True)


@dataclass
class Deployment:
    env: dict[str, str]  # what every service shares
    web: Process
    worker: Process
    beat: Process
    web_port: int
    worker_port: int
    beat_port: int
    token: str

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @contextmanager
    def explained(self) -> Iterator[None]:
        """A failure inside comes with the end of each service's log."""
        try:
            yield
        except Exception as exc:
            logs = "".join(
                f"\n--- {name} (end) ---\n{process.output()[-4000:]}"
                for name, process in (
                    ("web", self.web),
                    ("worker", self.worker),
                    ("beat", self.beat),
                )
            )
            if isinstance(exc, AssertionError):
                raise AssertionError(f"{exc}{logs}") from None
            raise AssertionError(f"{type(exc).__name__}: {exc}{logs}") from exc

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        response = fetch(f"{self.web_url}{path}", headers)
        assert response is not None, f"no answer from {self.web_url}{path}"
        return response


def answering(process: Process, what: str, probe: Callable[[], T]) -> T:
    """``probe()``'s value once it is true; fails at once if ``process`` exited."""

    def check() -> T:
        if process.popen.poll() is not None:
            raise AssertionError(f"exited ({process.popen.returncode}) before {what}")
        return probe()

    return wait_for(check, START_TIMEOUT, what, poll=0.2)


@pytest.fixture
def deployment(tmp_path) -> Iterator[Deployment]:
    token = secrets.token_urlsafe(24)
    with scratch_database(os.environ["DATABASE_URL"], "smoke") as database_url:
        shared = release_env(tmp_path, database_url, token)
        # The release steps, before any service starts: migrate as the migrate unit, Job and
        # compose service run it (the recipes' test holds them equal), collectstatic as the
        # image's build runs it.
        migrated = release_step(recipes.kubernetes("migrate").argv, shared)
        assert "Applying scheduler.0001" in migrated, migrated[-3000:]
        release_step(recipes.image_step("collectstatic"), shared)

        # Messages that test processes published to the default queue, which no other test's
        # worker reads, would be this worker's to run.
        purge_default_queue(shared["CELERY_BROKER_URL"])
        envs = {name: service_env(name, shared, tmp_path) for name in recipes.SERVICES}
        with ExitStack() as stack:
            web, worker, beat = (
                stack.enter_context(procfile_process(name, envs[name], tmp_path))
                for name in recipes.SERVICES
            )
            deployment = Deployment(
                shared,
                web,
                worker,
                beat,
                int(envs["web"]["PORT"]),
                int(envs["worker"]["METRICS_PORT"]),
                int(envs["beat"]["METRICS_PORT"]),
                token,
            )
            yield deployment


def test_the_production_command_lines_serve_and_run_jobs(deployment):
    with deployment.explained():
        probes_answer(deployment)
        the_admin_and_its_static_files_are_served(deployment)
        web_metrics_need_the_token(deployment)
        counted_before = the_exporters_answer(deployment)
        a_run_flows(deployment, counted_before)
        each_service_stops_cleanly(deployment)


def probes_answer(d: Deployment) -> None:
    """JSON, answered before host validation (an orchestrator knows no host name)."""
    health = answering(d.web, "gunicorn answers /healthz", lambda: fetch(f"{d.web_url}/healthz"))
    assert health.status == 200 and health.headers.get_content_type() == "application/json"
    assert health.json() == {"status": "ok"}
    assert d.get("/healthz", {"Host": "10.1.2.3:8000"}).status == 200
    ready = d.get("/readyz")
    assert ready.status == 200 and ready.headers.get_content_type() == "application/json"
    checks = ready.json()["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "database": True,
        "migrations": True,
        "broker": True,
    }, checks


def the_admin_and_its_static_files_are_served(d: Deployment) -> None:
    """With DEBUG off: the stylesheet comes from STATIC_ROOT through WhiteNoise, compressed
    by collectstatic."""
    login = d.get("/admin/login/")
    assert login.status == 200, login.text[:2000]
    stylesheet = re.search(r'<link[^>]+href="(/static/[^"]+\.css)"', login.text)
    assert stylesheet, login.text[:2000]
    css = d.get(stylesheet.group(1))
    assert css.status == 200 and css.headers.get_content_type() == "text/css" and css.body
    packed = d.get(stylesheet.group(1), {"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.body) == css.body


def web_metrics_need_the_token(d: Deployment) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        refused = d.get("/metrics", headers)
        assert refused.status in (401, 403) and b"jobs_" not in refused.body
    text = scrape(d.web_port, token=d.token) or ""
    for gauge in ("jobs_occurrences_pending", "jobs_runs_running", "jobs_incidents_open"):
        assert sample(text, gauge) == 0.0, text


def the_exporters_answer(d: Deployment) -> str:
    """Beat's exporter once its loop has turned, the worker's once it is ready; the worker's
    exposition then."""
    beat_metrics = answering(d.beat, "beat's first claim", lambda: claimed(d.beat_port))
    assert sample(beat_metrics, "jobs_dispatch_lag_seconds_count") is not None, beat_metrics
    d.worker.wait_for_output("ready.", timeout=START_TIMEOUT)
    # In multiprocess mode an exporter with nothing counted yet answers an empty page.
    answering(d.worker, "the worker's exporter", lambda: scrape(d.worker_port) is not None)
    return scrape(d.worker_port) or ""


def a_run_flows(d: Deployment, counted_before: str) -> None:
    """Run now (the admin's action calls the same function) -> Redis -> the worker, counted
    on the worker's exporter."""
    assert sample(counted_before, "jobs_runs_total", job=JOB, status="succeeded") is None
    report = run_now_from_a_shell(d.env)
    assert report["queued"] == "queued" and report["status"] == "succeeded", report
    after = wait_for(
        lambda: counted(d.worker_port), 30, "the run counted on the worker's exporter", poll=0.2
    )
    assert sample(after, "jobs_run_duration_seconds_count", job=JOB) == 1.0
    assert sample(scrape(d.web_port, token=d.token) or "", "jobs_runs_running") == 0.0


def each_service_stops_cleanly(d: Deployment) -> None:
    """SIGTERM to its main process (systemd's KillMode=mixed): it stops on its own, with
    success, and nothing on the way logged a traceback."""
    for name, process in (("web", d.web), ("beat", d.beat), ("worker", d.worker)):
        assert process.stop(STOP_TIMEOUT, main_only=True) == 0, f"{name} did not exit cleanly"
        assert "Traceback" not in process.output(), f"{name} logged a traceback"


def claimed(port: int) -> str | None:
    text = scrape(port)
    return text if text and (sample(text, "jobs_beat_claim_seconds_count") or 0) >= 1 else None


def counted(port: int) -> str | None:
    text = scrape(port) or ""
    return text if sample(text, "jobs_runs_total", job=JOB, status="succeeded") == 1.0 else None


def run_now_from_a_shell(env: dict[str, str]) -> dict:
    """``manage.py shell`` in the services' environment runs a schedule of JOB now and
    reports the run's end (tests/support/shell_run_now.py)."""
    code = f"from tests.support.shell_run_now import main; main({JOB!r}, {PARAMS!r})"
    output = release_step(("python", "manage.py", "shell", "-c", code), env)
    [line] = [line for line in output.splitlines() if line.startswith("{")]
    return json.loads(line)
