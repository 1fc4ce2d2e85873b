"""Settings from the environment: defaults, switches, and refusals with clear messages."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "options": db.get("OPTIONS", {}),
    "broker": settings.CELERY_BROKER_URL,
    "transport": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    "debug": settings.DEBUG, "email": settings.EMAIL_BACKEND,
    "acks_late": settings.CELERY_TASK_ACKS_LATE,
    "prefetch": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
    "reject": settings.CELERY_TASK_REJECT_ON_WORKER_LOST, "tz": settings.CELERY_TIMEZONE,
    "cancel_on_loss": settings.CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS,
    "max_retries": settings.CELERY_BROKER_CONNECTION_MAX_RETRIES,
}, default=str))
"""

VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "EMAIL_HOST",
    "CELERY_VISIBILITY_TIMEOUT",
    "JOBS_MAX_TIME_LIMIT",
)


def probe(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    base.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DATA_DIR": str(tmp_path), **env})
    code = "import django; django.setup()\n" + PROBE
    return subprocess.run(
        [sys.executable, "-c", code],
        env=base,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def loaded(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_default_is_sqlite_wal_and_the_filesystem_broker(tmp_path):
    config = loaded(probe(tmp_path))
    assert config["engine"] == "django.db.backends.sqlite3"
    assert config["name"] == str(tmp_path / "db.sqlite3")
    assert "journal_mode=WAL" in config["options"]["init_command"]
    assert config["broker"] == "filesystem://"
    assert config["transport"]["data_folder_in"] == str(tmp_path / "broker" / "queue")
    assert (tmp_path / "broker" / "queue").is_dir()
    assert not config["debug"] and config["email"].endswith("console.EmailBackend")


def test_job_platform_celery_defaults(tmp_path):
    config = loaded(probe(tmp_path))
    assert config["acks_late"] and config["reject"] and config["prefetch"] == 1
    assert config["tz"] == "UTC"
    # A broker outage: running jobs go on, and the worker reconnects for as long as it takes.
    assert config["cancel_on_loss"] is False and config["max_retries"] is None


def test_database_and_broker_urls_switch_servers_with_no_code_change(tmp_path):
    config = loaded(
        probe(
            tmp_path,
            SECRET_KEY="k" * 50,
            DATABASE_URL="postgres://u:p@db.example:5433/jobs",
            CELERY_BROKER_URL="redis://cache:6379/1",
            JOBS_MAX_TIME_LIMIT="100",
            EMAIL_HOST="smtp.example",
        )
    )
    assert config["engine"] == "django.db.backends.postgresql"
    assert config["options"]["pool"]["max_size"] == 10
    assert config["broker"] == "redis://cache:6379/1"
    assert config["transport"] == {
        "visibility_timeout": 700,
        "socket_timeout": 30.0,
        "socket_connect_timeout": 10.0,
        "socket_keepalive": True,
        "health_check_interval": 25,
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 1,
    }
    assert config["email"].endswith("smtp.EmailBackend")


def test_production_without_secret_key_refuses_to_start(tmp_path):
    result = probe(tmp_path, DATABASE_URL="postgres://u@db/jobs")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    result = probe(tmp_path, ALLOWED_HOSTS="jobs.example.com")
    assert "SECRET_KEY is not set" in result.stderr


def test_visibility_timeout_shorter_than_the_longest_job_is_refused(tmp_path):
    result = probe(
        tmp_path,
        CELERY_BROKER_URL="redis://x",
        CELERY_VISIBILITY_TIMEOUT="60",
        JOBS_MAX_TIME_LIMIT="3600",
    )
    assert result.returncode != 0
    assert "must be longer than JOBS_MAX_TIME_LIMIT (3600s)" in result.stderr


def test_a_malformed_variable_is_named(tmp_path):
    result = probe(tmp_path, DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG='maybe' is not a boolean" in result.stderr


def test_liveness_and_republish_settings_are_refused_when_they_cannot_work(tmp_path):
    slow = probe(tmp_path, SCHEDULER_WORKER_HEARTBEAT="60", SCHEDULER_WORKER_LOST_AFTER="30")
    assert slow.returncode != 0
    assert "SCHEDULER_WORKER_HEARTBEAT=60.0 must be above 0 and below" in slow.stderr
    never = probe(tmp_path, SCHEDULER_REPUBLISH_AFTER="0")
    assert never.returncode != 0 and "SCHEDULER_REPUBLISH_AFTER=0 must be" in never.stderr
    assert (
        probe(tmp_path, SCHEDULER_WORKER_HEARTBEAT="1", SCHEDULER_WORKER_LOST_AFTER="5").returncode
        == 0
    )


def test_settings_with_sentry_load_no_app_module(tmp_path):
    # config/ names the apps' hooks by dotted path: reading the settings (which sets up
    # sentry-sdk) imports no app module; the before_send hook is imported at the first event.
    code = (
        "import json, sys, sentry_sdk\n"
        "import config.settings\n"
        "hook = sentry_sdk.get_client().options['before_send']\n"
        "ours = ('scheduler', 'jobs_catalog')\n"
        "apps = sorted(m for m in sys.modules if m.split('.')[0] in ours)\n"
        "print(json.dumps({'apps': apps, 'hook': hook.path}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    env.update(DATA_DIR=str(tmp_path), SENTRY_DSN="http://key@127.0.0.1:9/1")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    found = loaded(result)
    assert found == {"apps": [], "hook": "scheduler.runs.log_redaction.scrub_sentry_event"}


def test_log_format_json_writes_one_json_object_a_line(tmp_path):
    code = (
        "import django, logging; django.setup()\n"
        "logging.getLogger('probe').warning('hello %s', 'there')\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    base.update(DJANGO_SETTINGS_MODULE="config.settings", DATA_DIR=str(tmp_path), LOG_FORMAT="json")
    result = subprocess.run(
        [sys.executable, "-c", code], env=base, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if '"probe"' in line]
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"]) == (
        "WARNING",
        "probe",
        "hello there",
    )
    assert record["time"] and "run_id" not in record  # outside a run: no run fields


def test_an_unknown_log_format_is_refused(tmp_path):
    result = probe(tmp_path, LOG_FORMAT="xml")
    assert result.returncode != 0 and "LOG_FORMAT='xml': use plain or json." in result.stderr


def test_metrics_networks_are_checked(tmp_path):
    result = probe(tmp_path, METRICS_ALLOW="10.0.0.0/8,not-a-net")
    assert (
        result.returncode != 0 and "METRICS_ALLOW: 'not-a-net' is not a network." in result.stderr
    )


def test_a_negative_cancel_grace_is_refused(tmp_path):
    negative = probe(tmp_path, JOBS_CANCEL_GRACE="-5")
    assert negative.returncode != 0
    assert "JOBS_CANCEL_GRACE=-5 must be a number of seconds, 0 or more" in negative.stderr
    words = probe(tmp_path, JOBS_CANCEL_GRACE="soon")
    assert words.returncode != 0 and "JOBS_CANCEL_GRACE='soon'" in words.stderr
    assert probe(tmp_path, JOBS_CANCEL_GRACE="0").returncode == 0
