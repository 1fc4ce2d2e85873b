"""The three groups people are put in: editors, operators and viewers of schedules.

Django creates model permissions after migrating (post_migrate), so the permissions these
groups need are created here first, the way post_migrate would.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    ("scheduler", "view_schedule"),
    ("scheduler", "view_occurrence"),
    ("jobs_catalog", "view_jobdefinition"),
]

GROUPS = {
    "Schedule editors": [
        ("scheduler", "add_schedule"),
        ("scheduler", "change_schedule"),
        ("scheduler", "delete_schedule"),
        *VIEW,
    ],
    "Schedule operators": [
        *VIEW,
        ("scheduler", "run_schedule"),
        ("scheduler", "pause_schedule"),
    ],
    "Schedule viewers": VIEW,
}


def create_groups(apps, schema_editor):
    db = schema_editor.connection.alias
    for label in ("scheduler", "jobs_catalog"):
        app_config = apps.get_app_config(label)
        app_config.models_module = True  # create_permissions skips apps without models
        create_permissions(app_config, apps=apps, verbosity=0, using=db)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        permissions = []
        for app_label, codename in wanted:
            permissions.append(
                permission_model.objects.using(db).get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        group, _ = group_model.objects.using(db).get_or_create(name=name)
        group.permissions.set(permissions)


def delete_groups(apps, schema_editor):
    group_model = apps.get_model("auth", "Group")
    group_model.objects.using(schema_editor.connection.alias).filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0002_beat_change_triggers"),
        ("jobs_catalog", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, delete_groups)]
