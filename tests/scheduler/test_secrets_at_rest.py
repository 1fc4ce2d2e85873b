"""Secret parameters at rest and in flight, read where an intruder would read them: the raw
schedule and cron-entry rows (SQL, not the ORM), the raw message on a real Redis broker;
key rotation with ``manage.py rotate_secrets``; the data migration that seals what older
versions stored in clear, and its way back."""

from __future__ import annotations

import base64
import json
import os
import uuid
from datetime import UTC, datetime

import pytest
import redis
from celery import Celery
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobs_catalog.models import JobDefinition
from jobs_catalog.secrets import SEALED, is_current, is_sealed, unseal
from scheduler.runs.models import JobRun
from scheduler.runs.outbox import Outbox
from scheduler.schedules import services
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import save_schedule

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "tok-At-Rest-9137"
HTTP_JOB = "builtin.http_request"
BEFORE = ("scheduler", "0007_jobrun_fewer_indexes")
SEALING = ("scheduler", "0010_seal_secret_params")


def http_schedule(name: str = "probe", queue: str = "", **params) -> Schedule:
    schedule = Schedule(
        name=name,
        job=JobDefinition.objects.get(name=HTTP_JOB),
        cron="*/5 * * * *",
        params={"url": "https://example.com/health", "bearer_token": SECRET, **params},
        queue=queue,
    )
    return save_schedule(schedule)


def raw_rows() -> str:
    """Every schedule's params and every cron entry's kwargs, as the database holds them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT params FROM scheduler_schedule")
        params = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT kwargs FROM django_celery_beat_periodictask")
        kwargs = [row[0] for row in cursor.fetchall()]
    return json.dumps([params, kwargs], default=str)


# --- at rest ---------------------------------------------------------------------------------
def test_the_schedule_and_its_cron_entry_store_the_secret_sealed(keys):
    schedule = http_schedule()
    services.pause(schedule, None, "checking")  # saved again without validation
    services.duplicate(schedule)
    raw = raw_rows()
    assert SECRET not in raw and raw.count(SEALED) == 4  # two schedules, two cron entries
    schedule.refresh_from_db()
    token = schedule.params["bearer_token"]
    assert unseal(token) == SECRET
    assert json.loads(schedule.periodic_task.kwargs)["bearer_token"] == token


def test_a_schedule_saved_with_clear_params_without_validation_is_sealed(keys):
    schedule = Schedule(
        name="raw",
        job=JobDefinition.objects.get(name=HTTP_JOB),
        cron="* * * * *",
        params={"url": "http://x", "bearer_token": SECRET},
    )
    save_schedule(schedule, validate=False)
    assert SECRET not in raw_rows()


# --- in flight ---------------------------------------------------------------------------------
@pytest.mark.redis
def test_the_message_on_redis_carries_the_sealed_token_and_a_masked_repr(keys, monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery prefers it to the URL
    url = os.environ["REDIS_URL"]
    queue = f"t-{uuid.uuid4().hex[:12]}"
    schedule = http_schedule(queue=queue)
    client = Celery("test-client", broker=url, set_as_current=False)
    client.conf.task_serializer = "json"
    server = redis.Redis.from_url(url)
    try:
        Outbox(client, _Clock()).enqueue(schedule, [_Clock().now()], JobRun.Trigger.MANUAL)
        [raw] = server.lrange(queue, 0, -1)
    finally:
        server.delete(queue)
        server.close()
        client.close()
    text = raw.decode()
    message = json.loads(text)
    body = base64.b64decode(message["body"]).decode()
    # Neither the envelope nor the (base64) body holds the clear value.
    assert SECRET not in text and SECRET not in body
    _, kwargs, _ = json.loads(body)
    assert is_sealed(kwargs["bearer_token"]) and unseal(kwargs["bearer_token"]) == SECRET
    repr_ = message["headers"]["kwargsrepr"]
    assert "'bearer_token': '********'" in repr_ and kwargs["bearer_token"][SEALED] not in repr_


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# --- rotation --------------------------------------------------------------------------------
def test_rotation_seals_everything_under_the_new_key_and_the_old_key_can_go(keys, capsys):
    first, second = http_schedule("one"), http_schedule("two", contains="x")
    keys.use(keys.new, keys.old)
    with pytest.raises(CommandError, match="before removing an old key"):
        call_command("rotate_secrets", "--check")
    assert "2 schedule(s) not under the first key" in capsys.readouterr().out
    call_command("rotate_secrets")
    assert "2 schedule(s) sealed under the first key" in capsys.readouterr().out
    keys.use(keys.new)  # the old key is gone: everything still opens
    for schedule in (first, second):
        schedule.refresh_from_db()
        token = schedule.params["bearer_token"]
        assert is_current(token) and unseal(token) == SECRET
        assert json.loads(schedule.periodic_task.kwargs)["bearer_token"] == token
    call_command("rotate_secrets", "--check")
    call_command("rotate_secrets")
    assert "0 schedule(s) sealed under the first key" in capsys.readouterr().out
    assert SECRET not in raw_rows()


def test_rotation_without_the_old_key_names_the_schedule_and_changes_nothing(keys, capsys):
    schedule = http_schedule("stuck")
    before = raw_rows()
    keys.use(keys.new)
    with pytest.raises(CommandError, match=r"1 schedule\(s\) left unchanged"):
        call_command("rotate_secrets")
    error = capsys.readouterr().err
    assert "stuck: secret parameter 'bearer_token': none of the keys opens" in error
    assert SECRET not in error and raw_rows() == before
    schedule.refresh_from_db()
    assert schedule.params["bearer_token"][SEALED] in before


# --- the data migration ------------------------------------------------------------------------
@pytest.fixture
def migrator():
    """migrate(target) -> the historical apps at ``target``; back at the latest afterwards."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()

    def migrate(target: tuple[str, str]):
        nonlocal executor
        executor.migrate([target])
        executor = MigrationExecutor(connection)
        return executor.loader.project_state([target]).apps

    yield migrate
    MigrationExecutor(connection).migrate(latest)


def test_the_migration_seals_clear_secrets_in_place_and_going_back_opens_them(keys, migrator):
    old_apps = migrator(BEFORE)
    OldSchedule = old_apps.get_model("scheduler", "Schedule")  # noqa: N806 - a model class
    OldTask = old_apps.get_model("django_celery_beat", "PeriodicTask")  # noqa: N806
    OldJob = old_apps.get_model("jobs_catalog", "JobDefinition")  # noqa: N806
    params = {"url": "http://x", "bearer_token": SECRET, "timeout": 5}
    for name in ("legacy", "other"):
        job = OldJob.objects.get(name=HTTP_JOB)
        task = OldTask.objects.create(
            name=f"schedule:{name}", task=HTTP_JOB, kwargs=json.dumps(params)
        )
        OldSchedule.objects.create(
            name=name, job=job, cron="* * * * *", params=params, periodic_task=task
        )
    assert raw_rows().count(SECRET) == 4

    migrator(SEALING)
    assert SECRET not in raw_rows()
    for schedule in Schedule.objects.select_related("periodic_task"):
        token = schedule.params["bearer_token"]
        assert unseal(token) == SECRET and schedule.params["timeout"] == 5
        assert json.loads(schedule.periodic_task.kwargs) == schedule.params

    migrator(BEFORE)
    assert raw_rows().count(SECRET) == 4
    for schedule in OldSchedule.objects.all():
        assert schedule.params == params


def test_going_back_without_the_key_refuses_and_says_why(keys, migrator):
    migrator(SEALING)
    schedule = http_schedule("sealed")
    keys.use(keys.new)
    with pytest.raises(RuntimeError, match="cannot open every sealed secret"):
        migrator(BEFORE)
    schedule.refresh_from_db()
    assert is_sealed(schedule.params["bearer_token"])
