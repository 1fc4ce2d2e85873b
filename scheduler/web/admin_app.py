"""The admin app with the platform's site (``scheduler.web.site``): listed in INSTALLED_APPS
in place of ``django.contrib.admin``, as Django's docs describe for overriding the default
site, so every ``admin.site.register`` lands on it."""

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "scheduler.web.site.JobsAdminSite"
