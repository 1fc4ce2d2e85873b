"""Pruning the run history on the real database: what goes (old runs, with their retries),
what stays (the last runs of every schedule, unresolved failures, runs still going, recent
attempts), batching, bad parameters, and the pruning schedule migrate creates."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import checks
from django.test import override_settings
from django.utils import timezone

from jobs_catalog.errors import ParameterError
from jobs_catalog.registry import registry
from scheduler.jobs import PRUNE_JOB
from scheduler.runs import retention
from scheduler.runs.models import JobRun, RunRequest
from scheduler.runs.retention import prune_history
from scheduler.schedules.models import OverlapPolicy, Schedule
from scheduler.schedules.platform_schedules import (
    PRUNE_SCHEDULE_NAME,
    create_platform_schedules,
    ensure_prune_schedule,
)
from scheduler.schedules.services import pause

pytestmark = pytest.mark.django_db
Status = JobRun.Status
DAY = timedelta(days=1)


@pytest.fixture
def now():
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def run(now):
    """A run ``days`` old (recorded and scheduled then); ``minutes`` orders runs of a day."""

    def make(schedule: Schedule | None, days: float, minutes: int = 0, **fields) -> JobRun:
        when = now - timedelta(days=days, minutes=minutes)
        defaults = {
            "schedule": schedule,
            "periodic_task": schedule.periodic_task if schedule else None,
            "task_name": schedule.job.name if schedule else "plain.task",
            "scheduled_for": when,
            "created_at": when,
            "status": Status.SUCCEEDED,
        }
        return JobRun.objects.create(**{**defaults, **fields})

    return make


def remaining(*runs: JobRun) -> set[int]:
    return set(JobRun.objects.filter(pk__in=[r.pk for r in runs]).values_list("pk", flat=True))


def prune(now, **kwargs) -> retention.PruneReport:
    options = {"older_than": 30 * DAY, "keep_last": 2, "now": now, **kwargs}
    return prune_history(**options)


def test_old_runs_go_and_recent_ones_stay(make_schedule, run, now):
    schedule = make_schedule()
    recent = [run(schedule, days=d) for d in (1, 2, 29)]
    old = [run(schedule, days=d) for d in (31, 40, 400)]
    report = prune(now, keep_last=0)
    assert report.deleted == 3 and report.batches == 1 and not report.interrupted
    assert remaining(*recent, *old) == {r.pk for r in recent}


def test_the_last_runs_of_every_schedule_stay_however_old(make_schedule, run, now):
    busy, quiet, idle = make_schedule("busy"), make_schedule("quiet"), make_schedule("idle")
    busy_runs = [run(busy, days=d) for d in (1, 2, 40, 41)]
    quiet_runs = [run(quiet, days=d) for d in (100, 200, 300)]  # a rarely running schedule
    idle_run = run(idle, days=500)  # fewer runs than keep_last: all stay
    report = prune(now, keep_last=2)
    assert remaining(*busy_runs) == {busy_runs[0].pk, busy_runs[1].pk}
    assert remaining(*quiet_runs) == {quiet_runs[0].pk, quiet_runs[1].pk}
    assert remaining(idle_run) == {idle_run.pk}
    assert report.deleted == 3
    assert report.kept["last runs of the schedule"] == 3


def test_an_unresolved_failure_stays_until_a_later_success(make_schedule, run, now):
    resolved, failing = make_schedule("resolved"), make_schedule("failing")
    for schedule in (resolved, failing):
        run(schedule, days=1, status=Status.SKIPPED)
        run(schedule, days=2, status=Status.MISSED)  # the last two, kept by keep_last
    old_failure = run(resolved, days=60, status=Status.FAILED)
    success = run(resolved, days=50)  # later than the failure: it is resolved
    lost = run(failing, days=90, status=Status.LOST)
    timed_out = run(failing, days=95, status=Status.TIMED_OUT)
    older_success = run(failing, days=100)  # before the failures: they stay unresolved
    report = prune(now)
    assert remaining(old_failure, success) == set()
    assert remaining(lost, timed_out, older_success) == {lost.pk, timed_out.pk}
    assert report.kept["unresolved failure"] == 2


def test_an_occurrence_goes_or_stays_whole_with_its_retries(make_schedule, run, now):
    schedule = make_schedule()
    run(schedule, days=1)
    run(schedule, days=2)
    # Attempt 1 failed, attempt 2 (a retry row) succeeded: resolved and old, all of it goes.
    first = run(schedule, days=40, status=Status.FAILED)
    retry = run(schedule, days=40, occurrence=first, attempt=2, status=Status.SUCCEEDED)
    # An old occurrence with a recent attempt stays whole.
    kept_first = run(schedule, days=45, status=Status.FAILED)
    recent_retry = run(
        schedule,
        days=0,
        occurrence=kept_first,
        attempt=2,
        status=Status.FAILED,
        scheduled_for=kept_first.scheduled_for,
    )
    # An old occurrence whose next attempt is still queued stays whole.
    waiting_first = run(schedule, days=50, status=Status.RETRYING)
    waiting_retry = run(
        schedule,
        days=50,
        minutes=-1,
        occurrence=waiting_first,
        attempt=2,
        status=Status.QUEUED,
        scheduled_for=waiting_first.scheduled_for,
    )
    report = prune(now)
    assert remaining(first, retry) == set()
    assert remaining(kept_first, recent_retry) == {kept_first.pk, recent_retry.pk}
    assert remaining(waiting_first, waiting_retry) == {waiting_first.pk, waiting_retry.pk}
    assert report.deleted == 2
    assert dict(report.kept) == {"recent attempt": 1, "active": 1}


def test_old_runs_still_to_run_or_running_stay(make_schedule, run, now):
    schedule = make_schedule()
    run(schedule, days=1)
    run(schedule, days=2)
    going = [run(schedule, days=40 + i, status=s) for i, s in enumerate(JobRun.ACTIVE)]
    prune(now)
    assert remaining(*going) == {r.pk for r in going}


def test_runs_without_a_schedule_are_pruned_by_age_alone(run, now):
    old = [run(None, days=d, status=Status.FAILED) for d in (31, 32, 33)]
    young = run(None, days=3, status=Status.FAILED)
    report = prune(now, keep_last=50)
    assert remaining(*old, young) == {young.pk}
    assert report.deleted == 3


def test_a_deleted_schedule_s_runs_follow_the_age_rule(make_schedule, run, now):
    schedule = make_schedule()
    runs = [run(schedule, days=d) for d in (40, 41)]
    schedule.delete()  # the history stays, unlinked
    assert JobRun.objects.filter(schedule__isnull=True).count() == 2
    prune(now, keep_last=50)
    assert remaining(*runs) == set()


def test_it_works_in_batches_and_resumes(make_schedule, run, now):
    schedules = [make_schedule(f"s{i}") for i in range(3)]
    old = [run(s, days=40 + d) for s in schedules for d in range(4)]  # 12 old runs
    report = prune(now, keep_last=1, batch_size=2, max_batches=2)
    assert report.interrupted and report.batches == 2 and report.deleted == 4
    # The oldest go first (created_at order); each batch commits on its own.
    oldest_four = sorted(old, key=lambda r: (r.created_at, r.pk))[:4]
    assert remaining(*oldest_four) == set()
    rest = prune(now, keep_last=1, batch_size=2)
    assert not rest.interrupted and rest.batches == 4  # the 8 left, 2 at a time
    assert report.deleted + rest.deleted == 12 - 3  # the newest of each schedule stays
    assert JobRun.objects.count() == 3


def test_bad_parameters_are_refused_and_nothing_is_deleted(make_schedule, run, now):
    schedule = make_schedule()
    old = [run(schedule, days=d) for d in (40, 50, 60)]
    for bad in (
        {"older_than": timedelta(0)},
        {"keep_last": -1},
        {"batch_size": 0},
        {"batch_size": retention.MAX_BATCH_SIZE + 1},
    ):
        with pytest.raises(ValueError):
            prune(now, **bad)
    job = registry.get(PRUNE_JOB)
    for params, field in (
        ({"older_than_days": 0}, "older_than_days"),
        ({"keep_last": -5}, "keep_last"),
        ({"batch_size": 10}, "batch_size"),
        ({"older_than_days": "soon"}, "older_than_days"),
        ({"colour": "red"}, "colour"),
    ):
        with pytest.raises(ParameterError) as caught:
            job.call(params)
        assert field in caught.value.by_field()
    assert remaining(*old) == {r.pk for r in old}


@override_settings(JOBS_HISTORY_RETENTION_DAYS=45, JOBS_HISTORY_KEEP_PER_SCHEDULE=1)
def test_the_job_takes_its_defaults_from_the_settings_and_reports(make_schedule, run, now):
    schedule = make_schedule()
    newest = run(schedule, days=50)
    mid = run(schedule, days=51)
    young = run(None, days=40)
    result = registry.get(PRUNE_JOB).call({})
    assert remaining(newest, mid, young) == {newest.pk, young.pk}
    assert result["deleted"] == 1 and result["keep_last"] == 1
    assert result["kept"] == {"last runs of the schedule": 1}
    # Parameters override the settings.
    result = registry.get(PRUNE_JOB).call({"older_than_days": 30, "keep_last": 0})
    assert result["deleted"] == 2 and JobRun.objects.count() == 0


def test_only_retries_and_requests_point_at_runs_so_plain_deletes_are_safe():
    # A model that points at runs must be deleted through Django's collector: the pruning
    # falls back to it by itself, and this test flags the change.
    assert retention._only_self_references()
    assert sorted(rel.name for rel in JobRun._meta.related_objects) == ["request", "retries"]


def test_an_applications_old_run_goes_with_its_request(run, now):
    old = run(None, days=100)
    RunRequest.objects.create(run=old, kwargs={"path": "/x"}, idempotency_key="k")
    young = run(None, days=1)
    RunRequest.objects.create(run=young, kwargs={"path": "/y"})
    report = prune(now, keep_last=0)
    assert report.deleted == 1
    assert remaining(old, young) == {young.pk}
    assert list(RunRequest.objects.values_list("run_id", flat=True)) == [young.pk]


# --- the pruning schedule -----------------------------------------------------------------------
def test_migrate_creates_the_pruning_schedule_once():
    assert ensure_prune_schedule(cron="") is None
    with override_settings(JOBS_HISTORY_PRUNE_CRON="17 3 * * *"):
        create_platform_schedules()
        create_platform_schedules()  # idempotent
    [schedule] = Schedule.objects.filter(job__name=PRUNE_JOB)
    assert schedule.name == PRUNE_SCHEDULE_NAME and schedule.cron == "17 3 * * *"
    assert schedule.timezone == "UTC" and schedule.is_active
    assert schedule.overlap_policy == OverlapPolicy.SKIP
    assert schedule.periodic_task.task == PRUNE_JOB and schedule.periodic_task.enabled
    assert schedule.params["older_than_days"] is None  # follows the setting


def test_a_paused_or_edited_pruning_schedule_is_left_alone():
    schedule = ensure_prune_schedule(cron="17 3 * * *")
    pause(schedule, None, "we keep everything")
    Schedule.objects.filter(pk=schedule.pk).update(name="my pruning", cron="0 4 * * 0")
    assert ensure_prune_schedule(cron="17 3 * * *") is None
    [only] = Schedule.objects.filter(job__name=PRUNE_JOB)
    assert (only.name, only.cron, only.is_paused) == ("my pruning", "0 4 * * 0", True)


def test_no_pruning_schedule_without_a_cron_and_a_bad_cron_is_refused():
    with override_settings(JOBS_HISTORY_PRUNE_CRON=""):
        create_platform_schedules()
    assert not Schedule.objects.filter(job__name=PRUNE_JOB).exists()
    assert ensure_prune_schedule(cron="61 * * * *") is None
    assert not Schedule.objects.exists()
    with override_settings(JOBS_HISTORY_PRUNE_CRON="61 * * * *"):
        errors = [e for e in checks.run_checks() if e.id == "scheduler.E001"]
    assert errors and "JOBS_HISTORY_PRUNE_CRON='61 * * * *'" in errors[0].msg
    with override_settings(JOBS_HISTORY_RETENTION_DAYS=0, JOBS_HISTORY_KEEP_PER_SCHEDULE=-1):
        ids = {e.id for e in checks.run_checks()}
    assert {"scheduler.E002", "scheduler.E003"} <= ids
