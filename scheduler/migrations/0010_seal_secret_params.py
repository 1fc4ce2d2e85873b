"""Seal the secret parameter values schedules stored in clear (their row and their cron
entry's kwargs), with this process's keys (``SECRETS_ENCRYPTION_KEYS``, else SECRET_KEY's).

Which parameters are secret is the job's code's to say: a schedule whose job is not installed
where the migration runs keeps its values as they are (listed); ``manage.py rotate_secrets``
seals them later where the code is. Reversible: going back opens every sealed value again
(with the keys that sealed them), as the code before this migration expects.
"""

from django.db import migrations

from jobs_catalog.secrets import seal_params, unseal_params
from scheduler.schedules.secret_storage import rewrite_schedules


def _models(apps):
    return apps.get_model("scheduler", "Schedule"), apps.get_model(
        "django_celery_beat", "PeriodicTask"
    )


def seal(apps, schema_editor):
    outcome = rewrite_schedules(seal_params, *_models(apps))
    for name in outcome.unknown_job:
        print(
            f"\n  schedule {name!r}: its job is not installed here; its parameters are left as they are"
        )


def open_again(apps, schema_editor):
    outcome = rewrite_schedules(unseal_params, *_models(apps))
    if outcome.failed:
        raise RuntimeError(
            "cannot open every sealed secret with the keys configured here: "
            + "; ".join(outcome.failed)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0009_worker_heartbeats_republished"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seal, open_again)]
