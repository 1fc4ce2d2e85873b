"""Worker heartbeats (the reaper tells live workers from dead ones), and how many times the
sweep republished a run that stayed queued. ``republished`` has a database default: the
worker's own INSERT of a direct call's run does not name it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0008_incident_notified_nobody"),
    ]

    operations = [
        migrations.CreateModel(
            name="WorkerHeartbeat",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hostname", models.CharField(max_length=255, unique=True)),
                ("pid", models.PositiveIntegerField()),
                ("started_at", models.DateTimeField()),
                ("last_seen_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "worker heartbeat",
            },
        ),
        migrations.AddField(
            model_name="jobrun",
            name="republished",
            field=models.PositiveSmallIntegerField(db_default=0, default=0),
        ),
    ]
