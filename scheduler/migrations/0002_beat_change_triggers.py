"""Triggers that journal every change to django-celery-beat's tables into BeatChange.

Only the columns that shape what or when a task runs are watched, so beat's own bookkeeping
(last_run_at, total_run_count) does not wake it. On PostgreSQL the trigger also notifies
beat (LISTEN scheduler_beat_changes), which wakes at once instead of polling.
"""

from django.db import migrations

TASK_COLUMNS = (
    "name, task, interval_id, crontab_id, solar_id, clocked_id, args, kwargs, queue, "
    "exchange, routing_key, headers, priority, expires, expire_seconds, one_off, start_time, "
    "enabled"
)
SCHEDULE_TABLES = {
    "crontab": "django_celery_beat_crontabschedule",
    "interval": "django_celery_beat_intervalschedule",
    "clocked": "django_celery_beat_clockedschedule",
    "solar": "django_celery_beat_solarschedule",
}
TASK_TABLE = "django_celery_beat_periodictask"


def _postgres(create: bool) -> list[str]:
    tables = {"task": TASK_TABLE, **SCHEDULE_TABLES}
    if not create:
        return [
            *(f"DROP TRIGGER IF EXISTS scheduler_beat_change ON {t}" for t in tables.values()),
            "DROP FUNCTION IF EXISTS scheduler_beat_change()",
        ]
    statements = [
        """
        CREATE OR REPLACE FUNCTION scheduler_beat_change() RETURNS trigger AS $$
        DECLARE
            changed_id bigint;
        BEGIN
            IF TG_OP = 'DELETE' THEN changed_id := OLD.id; ELSE changed_id := NEW.id; END IF;
            INSERT INTO scheduler_beatchange (source, row_id, xid, changed_at)
                VALUES (TG_ARGV[0], changed_id, txid_current(), clock_timestamp());
            PERFORM pg_notify('scheduler_beat_changes', TG_ARGV[0]);
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
        """
    ]
    for source, table in tables.items():
        update = f"UPDATE OF {TASK_COLUMNS}" if source == "task" else "UPDATE"
        statements.append(
            f"CREATE TRIGGER scheduler_beat_change AFTER INSERT OR {update} OR DELETE "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION scheduler_beat_change('{source}')"
        )
    return statements


def _sqlite(create: bool) -> list[str]:
    tables = {"task": TASK_TABLE, **SCHEDULE_TABLES}
    statements = []
    for source, table in tables.items():
        for event, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            name = f"scheduler_bc_{source}_{event.lower()}"
            if not create:
                statements.append(f"DROP TRIGGER IF EXISTS {name}")
                continue
            when = f"UPDATE OF {TASK_COLUMNS}" if (source, event) == ("task", "UPDATE") else event
            statements.append(
                f"CREATE TRIGGER {name} AFTER {when} ON {table} FOR EACH ROW BEGIN "
                "INSERT INTO scheduler_beatchange (source, row_id, xid, changed_at) "
                f"VALUES ('{source}', {row}.id, NULL, strftime('%Y-%m-%d %H:%M:%f', 'now')); END"
            )
    return statements


def _run(schema_editor, create: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = _postgres(create)
    elif vendor == "sqlite":
        statements = _sqlite(create)
    else:
        raise RuntimeError(f"the beat change journal supports PostgreSQL and SQLite, not {vendor}")
    for statement in statements:
        schema_editor.execute(statement)


def create_triggers(apps, schema_editor):
    _run(schema_editor, create=True)


def drop_triggers(apps, schema_editor):
    _run(schema_editor, create=False)


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
