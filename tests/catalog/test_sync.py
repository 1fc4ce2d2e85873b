"""The JobDefinition mirror follows the code; the admin shows it read-only."""

from importlib.metadata import EntryPoint

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from jobs_catalog.discovery import ENTRY_POINT_GROUP, discover
from jobs_catalog.models import JobDefinition
from jobs_catalog.params import MASK
from jobs_catalog.registry import Registry
from jobs_catalog.sync import sync_job_definitions
from tests.catalog.conftest import forget_fixture_modules

pytestmark = pytest.mark.django_db


def load(registry: Registry, *modules: str) -> Registry:
    forget_fixture_modules()
    entry_points = [
        EntryPoint(name=m, value=f"tests.fixtures.plugins.{m}", group=ENTRY_POINT_GROUP)
        for m in modules
    ]
    return discover(registry, builtin_modules=(), app_configs=(), plugin_entry_points=entry_points)


def test_migrate_mirrors_the_process_catalog():
    # post_migrate ran when the test database was built.
    names = set(JobDefinition.objects.values_list("name", flat=True))
    assert {"builtin.http_request", "builtin.file_cleanup"} <= names


def test_sync_creates_rows_with_schema_defaults_and_policy(fresh_registry):
    JobDefinition.objects.all().delete()
    report = sync_job_definitions(load(fresh_registry, "good"))
    assert sorted(report.created) == ["plugin.echo", "plugin.pick"]
    echo = JobDefinition.objects.get(name="plugin.echo")
    assert echo.available and echo.title == "Echo"
    assert echo.params_schema["required"] == ["message"]
    assert echo.params_schema["properties"]["token"]["secret"] is True
    assert echo.defaults == {"shout": False, "token": ""}
    assert echo.retry_policy["max_attempts"] == 3
    assert echo.module == "tests.fixtures.plugins.good"


def test_sync_is_idempotent_and_only_changes_what_changed(fresh_registry):
    registry = load(fresh_registry, "good")
    sync_job_definitions(registry)
    first = JobDefinition.objects.get(name="plugin.echo")
    again = sync_job_definitions(registry)
    assert again.created == again.updated == again.unavailable == []
    second = JobDefinition.objects.get(name="plugin.echo")
    assert second.changed_at == first.changed_at and second.last_seen >= first.last_seen


def test_a_job_whose_code_disappeared_stays_marked_unavailable(fresh_registry):
    sync_job_definitions(load(fresh_registry, "good"))
    report = sync_job_definitions(Registry())
    assert sorted(report.unavailable) == ["plugin.echo", "plugin.pick"]
    row = JobDefinition.objects.get(name="plugin.echo")
    assert not row.available and row.unavailable_reason == "its code is no longer installed"
    # Back in code: available again.
    sync_job_definitions(load(Registry(), "good"))
    assert JobDefinition.objects.get(name="plugin.echo").available


def test_a_job_whose_module_now_fails_to_import_says_why(fresh_registry):
    registry = Registry()
    from jobs_catalog.definition import Job

    registry.register(
        Job(name="plugin.before", func=lambda: None, title="Before", source="x")
    )  # stands in for the job as it was, from a module that later broke
    JobDefinition.objects.all().delete()
    sync_job_definitions(registry)
    JobDefinition.objects.filter(name="plugin.before").update(
        module="tests.fixtures.plugins.broken"
    )
    sync_job_definitions(load(fresh_registry, "broken"))
    row = JobDefinition.objects.get(name="plugin.before")
    assert not row.available
    assert "RuntimeError: plugin blew up on import" in row.unavailable_reason


@pytest.fixture
def staff_client(client):
    user = User.objects.create_user("viewer", password="pw-123456!", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_jobdefinition"))
    client.force_login(user)
    return client


def test_admin_lists_the_catalog_read_only(staff_client):
    url = reverse("admin:jobs_catalog_jobdefinition_changelist")
    page = staff_client.get(url)
    assert page.status_code == 200
    assert b"builtin.http_request" in page.content
    row = JobDefinition.objects.get(name="builtin.http_request")
    detail = staff_client.get(reverse("admin:jobs_catalog_jobdefinition_change", args=[row.pk]))
    assert detail.status_code == 200
    assert b"<code>url</code>" in detail.content and b"required" in detail.content
    assert staff_client.get(reverse("admin:jobs_catalog_jobdefinition_add")).status_code == 403
    delete = reverse("admin:jobs_catalog_jobdefinition_delete", args=[row.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert JobDefinition.objects.filter(pk=row.pk).exists()


def test_admin_shows_plugin_problems(staff_client, monkeypatch, fresh_registry):
    monkeypatch.setattr("jobs_catalog.admin.registry", load(fresh_registry, "broken"))
    page = staff_client.get(reverse("admin:jobs_catalog_jobdefinition_changelist"))
    assert b"plugin blew up on import" in page.content


def test_secret_defaults_are_masked_in_the_mirror(fresh_registry):
    from jobs_catalog.definition import Job
    from jobs_catalog.params import Param

    def login(password: str = Param("default-pass", secret=True)):
        pass

    registry = Registry()
    registry.register(Job(name="plugin.login", func=login, title="Login"))
    sync_job_definitions(registry)
    assert JobDefinition.objects.get(name="plugin.login").defaults == {"password": MASK}


def test_the_catalog_is_hidden_from_people_without_permission(client):
    user = User.objects.create_user("nobody", password="pw-123456!", is_staff=True)
    client.force_login(user)
    page = client.get(reverse("admin:jobs_catalog_jobdefinition_changelist"))
    assert page.status_code == 403
