"""Availability follows what the live workers can run, not the last process to start."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from jobs_catalog.availability import stale_after
from jobs_catalog.definition import Job
from jobs_catalog.discovery import enforce_time_limit_ceiling
from jobs_catalog.models import CatalogWorker, JobDefinition
from jobs_catalog.registry import Registry
from jobs_catalog.sync import sync_job_definitions
from jobs_catalog.worker_catalog import announce, forget

pytestmark = pytest.mark.django_db

LONG, SHORT, ONLY_ON_WEB = "plugin.long", "plugin.short", "plugin.web_only"


def long_job() -> None:
    pass


def short_job() -> None:
    pass


def web_only_job() -> None:
    pass


def catalog(max_time_limit: int, *extra: Job) -> Registry:
    """A process's catalog under a JOBS_MAX_TIME_LIMIT of ``max_time_limit`` seconds."""
    registry = Registry()
    registry.register(Job(name=LONG, func=long_job, title="Long", time_limit=600))
    registry.register(Job(name=SHORT, func=short_job, title="Short", time_limit=60))
    for job in extra:
        registry.register(job)
    enforce_time_limit_ceiling(registry, max_time_limit)
    return registry


def row(name: str) -> JobDefinition:
    return JobDefinition.objects.get(name=name)


@pytest.fixture(autouse=True)
def empty_mirror():
    JobDefinition.objects.all().delete()
    CatalogWorker.objects.all().delete()


def make_stale(hostname: str) -> None:
    then = timezone.now() - stale_after() - timedelta(seconds=1)
    CatalogWorker.objects.filter(hostname=hostname).update(last_seen=then)


def test_a_strict_worker_starting_last_hides_nothing_the_permissive_one_runs():
    announce("permissive@a", catalog(3600))
    announce("strict@b", catalog(100))

    assert row(LONG).available and row(LONG).unavailable_reason == ""
    assert row(SHORT).available
    strict = CatalogWorker.objects.get(hostname="strict@b")
    assert LONG not in strict.loaded and "JOBS_MAX_TIME_LIMIT (100s)" in strict.refused[LONG]


def test_beat_or_web_with_a_lower_ceiling_marks_nothing_unavailable():
    sync_job_definitions(catalog(3600))
    sync_job_definitions(catalog(100))  # a beat started with a lower limit, no worker live

    assert row(LONG).available and row(LONG).code_problem == ""
    assert row(LONG).time_limit == 600  # still described by the process that refused it


def test_when_the_permissive_worker_is_gone_the_reason_names_the_strict_one():
    announce("permissive@a", catalog(3600))
    strict = announce("strict@b", catalog(100))
    make_stale("permissive@a")  # killed: no clean shutdown, its heartbeat just stops

    strict.beat()

    long = row(LONG)
    assert not long.available
    assert long.unavailable_reason.startswith("strict@b: job 'plugin.long' asks for a 600s")
    assert "permissive@a" not in long.unavailable_reason
    assert row(SHORT).available

    announce("permissive@a", catalog(3600))  # back
    assert row(LONG).available


def test_a_clean_shutdown_takes_the_worker_out_at_once():
    announce("permissive@a", catalog(3600))
    announce("strict@b", catalog(100))

    forget("permissive@a")

    assert not row(LONG).available and "strict@b" in row(LONG).unavailable_reason
    forget("strict@b")  # no worker left: the code found decides again
    assert row(LONG).available


def test_a_job_installed_only_where_the_web_runs_is_unavailable_while_workers_are_live():
    web_only = Job(name=ONLY_ON_WEB, func=web_only_job, title="Web only")
    sync_job_definitions(catalog(3600, web_only))
    assert row(ONLY_ON_WEB).available  # no worker seen yet: the code decides

    announce("worker@a", catalog(3600))

    reason = row(ONLY_ON_WEB).unavailable_reason
    assert not row(ONLY_ON_WEB).available
    assert reason == "worker@a: its code is not installed on this worker"


def test_a_heartbeat_with_nothing_changed_costs_two_queries(django_assert_num_queries):
    heartbeat = announce("worker@a", catalog(3600))
    with django_assert_num_queries(2):  # its own last_seen, then the live workers
        heartbeat.beat()


def test_a_heartbeat_rewrites_a_row_that_went_missing():
    heartbeat = announce("worker@a", catalog(3600))
    CatalogWorker.objects.all().delete()

    heartbeat.beat()

    assert CatalogWorker.objects.get(hostname="worker@a").loaded == [LONG, SHORT]


def test_the_admin_shows_each_live_worker_and_why_it_cannot(client):
    announce("permissive@a", catalog(3600))
    announce("strict@b", catalog(100))
    client.force_login(User.objects.create_superuser("root", password="pw-123456!"))

    page = client.get(reverse("admin:jobs_catalog_jobdefinition_change", args=[row(LONG).pk]))

    text = page.content.decode()
    assert "<code>permissive@a</code>: can run it" in text
    assert "<code>strict@b</code>: cannot: job &#x27;plugin.long&#x27; asks for a 600s" in text
