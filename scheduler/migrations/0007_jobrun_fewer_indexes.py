"""Fewer indexes on the run history: each one is written on every start and end of a run.

- ``schedule_id``'s own index goes: run_schedule_recent and run_active lead with the column.
- ``occurrence_id``'s index becomes partial (later attempts only): a first attempt, nearly
  every row, has no entry to write.

Only the indexes change: Django would otherwise drop and re-add both foreign keys (a
validating scan of the whole table) to change ``db_index``.
"""

import django.db.models.deletion
from django.db import migrations, models

FK_INDEXES = {
    "occurrence_id": "scheduler_jobrun_occurrence_id_1bd0b576",
    "schedule_id": "scheduler_jobrun_schedule_id_4443a339",
}


class Migration(migrations.Migration):
    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("scheduler", "0006_alerts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="jobrun",
                    name="occurrence",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="retries",
                        to="scheduler.jobrun",
                    ),
                ),
                migrations.AlterField(
                    model_name="jobrun",
                    name="schedule",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="runs",
                        to="scheduler.schedule",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql=f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "scheduler_jobrun" ("{column}")',
                )
                for column, name in FK_INDEXES.items()
            ],
        ),
        migrations.AddIndex(
            model_name="jobrun",
            index=models.Index(
                condition=models.Q(("occurrence__isnull", False)),
                fields=["occurrence"],
                name="run_retries",
            ),
        ),
    ]
