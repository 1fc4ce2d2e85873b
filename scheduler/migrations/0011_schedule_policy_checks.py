"""Check constraints on the schedule's policy fields, after repairing rows that break them
(stored before the rules held): a retry value out of range inherits the job's again, a
cap below the base goes, the other numbers are brought within their bounds."""

import math

from django.db import migrations, models

# Frozen here: the rules as they were when this migration was written.
MAX_ATTEMPTS = 100
MAX_BACKOFF = 86400.0
MAX_JITTER = 86400
MAX_CATCHUP_WINDOW = 31 * 86400
MAX_CATCHUP_RUNS = 1000


def _backoff_or_none(value):
    if value is None or not math.isfinite(value) or not 0 < value <= MAX_BACKOFF:
        return None
    return value


#: The fields repaired.
FIELDS = (
    "retry_max_attempts",
    "retry_backoff_base",
    "retry_backoff_cap",
    "jitter",
    "catchup_window",
    "max_catchup_runs",
)


def repair_policies(apps, schema_editor):
    schedule_model = apps.get_model("scheduler", "Schedule")
    for schedule in schedule_model.objects.all().iterator():
        before = [getattr(schedule, name) for name in FIELDS]
        attempts = schedule.retry_max_attempts
        if attempts is not None and not 1 <= attempts <= MAX_ATTEMPTS:
            schedule.retry_max_attempts = None
        schedule.retry_backoff_base = _backoff_or_none(schedule.retry_backoff_base)
        schedule.retry_backoff_cap = _backoff_or_none(schedule.retry_backoff_cap)
        base, cap = schedule.retry_backoff_base, schedule.retry_backoff_cap
        if base is not None and cap is not None and cap < base:
            schedule.retry_backoff_cap = None
        schedule.jitter = min(schedule.jitter, MAX_JITTER)
        schedule.catchup_window = min(
            max(schedule.catchup_window, schedule.jitter), MAX_CATCHUP_WINDOW
        )
        schedule.max_catchup_runs = min(max(schedule.max_catchup_runs, 1), MAX_CATCHUP_RUNS)
        if [getattr(schedule, name) for name in FIELDS] != before:
            schedule.save(update_fields=FIELDS)


class Migration(migrations.Migration):
    dependencies = [("scheduler", "0010_seal_secret_params")]

    operations = [
        migrations.RunPython(repair_policies, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("retry_max_attempts__isnull", True),
                    models.Q(("retry_max_attempts__gte", 1), ("retry_max_attempts__lte", 100)),
                    _connector="OR",
                ),
                name="schedule_retry_max_attempts_range",
                violation_error_message="Retry attempts must be between 1 and 100.",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("retry_backoff_base__isnull", True),
                    models.Q(("retry_backoff_base__gt", 0), ("retry_backoff_base__lte", 86400.0)),
                    _connector="OR",
                ),
                name="schedule_retry_backoff_base_range",
                violation_error_message="The backoff base must be more than 0 and at most 86400 seconds.",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("retry_backoff_cap__isnull", True),
                    models.Q(("retry_backoff_cap__gt", 0), ("retry_backoff_cap__lte", 86400.0)),
                    _connector="OR",
                ),
                name="schedule_retry_backoff_cap_range",
                violation_error_message="The backoff cap must be more than 0 and at most 86400 seconds.",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("retry_backoff_base__isnull", True),
                    ("retry_backoff_cap__isnull", True),
                    ("retry_backoff_cap__gte", models.F("retry_backoff_base")),
                    _connector="OR",
                ),
                name="schedule_retry_backoff_cap_above_base",
                violation_error_message="The backoff cap must be at least the backoff base.",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(("jitter__lte", 86400)),
                name="schedule_jitter_range",
                violation_error_message="The jitter must be at most 86400 seconds.",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("catchup_window__gte", models.F("jitter")), ("catchup_window__lte", 2678400)
                ),
                name="schedule_catchup_window_range",
                violation_error_message="The catch-up window must be at least the jitter and at most 2678400 seconds.",
            ),
        ),
        migrations.AddConstraint(
            model_name="schedule",
            constraint=models.CheckConstraint(
                condition=models.Q(("max_catchup_runs__gte", 1), ("max_catchup_runs__lte", 1000)),
                name="schedule_max_catchup_runs_range",
                violation_error_message="The most catch-up runs must be between 1 and 1000.",
            ),
        ),
    ]
