"""An incident is marked notified only with its deliveries. Incidents marked notified before,
with no delivery ever recorded (no channel applied, or a stale channel list), say now that
they notified nobody, and a later run that counts on an open one announces it."""

from django.db import migrations, models
from django.db.models import Exists, OuterRef


def unmark_unannounced(apps, schema_editor):
    Incident = apps.get_model("scheduler", "Incident")
    AlertDelivery = apps.get_model("scheduler", "AlertDelivery")
    delivered = AlertDelivery.objects.filter(incident=OuterRef("pk"))
    Incident.objects.filter(last_notified_at__isnull=False).exclude(Exists(delivered)).update(
        last_notified_at=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0007_jobrun_fewer_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="incident",
            name="last_notified_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When it was last announced (a delivery per channel that took it); "
                "empty: it notified nobody.",
                null=True,
                verbose_name="last notified",
            ),
        ),
        migrations.RunPython(unmark_unannounced, migrations.RunPython.noop, elidable=True),
    ]
