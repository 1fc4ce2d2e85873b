"""English formats of the admin: a time as ``2026-12-03 14:05:09 CET`` on the pages Django
renders itself (the catalog, django-celery-beat's, an object's history), as
:func:`scheduler.formatting.format_time` writes it on the platform's own. Other formats
follow Django's English locale."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
