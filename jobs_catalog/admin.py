"""The catalog, read-only: jobs come from code, never from the admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from jobs_catalog.availability import live_workers
from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry


class ReadOnlyAdminMixin:
    """For records the platform writes and people only read."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(JobDefinition)
class JobDefinitionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "title", "queue", "source", "available", "last_seen")
    list_filter = ("available", "queue")
    search_fields = ("name", "title", "description", "module")
    ordering = ("name",)
    fields = (
        "name",
        "title",
        "description",
        "parameters",
        "queue",
        "time_limits",
        "retry",
        "source",
        "module",
        "available",
        "unavailable_reason",
        "workers",
        "code_problem",
        "first_seen",
        "last_seen",
        "changed_at",
    )
    readonly_fields = fields

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        # Broken plugins have no row to show, so they are announced on the list itself.
        for problem in registry.problems:
            messages.warning(request, f"Plugin problem: {problem}")
        return super().changelist_view(request, extra_context)

    @admin.display(description="Parameters")
    def parameters(self, obj: JobDefinition) -> str:
        schema = obj.params_schema or {}
        properties = schema.get("properties", {})
        if not properties:
            return "none"
        required = set(schema.get("required", []))
        rows = []
        for name, prop in properties.items():
            kind = prop.get("type") or ("choice" if "enum" in prop else "value")
            if "enum" in prop:
                kind = f"choice of {', '.join(map(str, prop['enum']))}"
            if name in required:
                default = "required"
            else:
                default = (
                    "default: ******** "
                    if prop.get("secret")
                    else f"default: {prop.get('default')!r}"
                )
            secret = " (secret)" if prop.get("secret") else ""
            rows.append((name, f"{kind}{secret}", default, prop.get("description", "")))
        body = format_html_join(
            "", "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html(
            "<table><thead><tr><th>name</th><th>type</th><th>required / default</th>"
            "<th>help</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="Live workers")
    def workers(self, obj: JobDefinition) -> str:
        workers = live_workers()
        if not workers:
            return "none seen lately: availability follows the code the platform found"
        rows = [
            (
                worker.hostname,
                "can run it"
                if obj.name in worker.loaded
                else f"cannot: {worker.reason_missing(obj.name, obj.module)}",
            )
            for worker in workers
        ]
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li><code>{}</code>: {}</li>", rows)
        )

    @admin.display(description="Time limits")
    def time_limits(self, obj: JobDefinition) -> str:
        soft = f"{obj.soft_time_limit}s" if obj.soft_time_limit else "platform default"
        hard = f"{obj.time_limit}s" if obj.time_limit else "platform default"
        return f"soft {soft}, hard {hard}"

    @admin.display(description="Retry policy")
    def retry(self, obj: JobDefinition) -> str:
        policy = obj.retry_policy or {}
        if not policy:
            return "-"
        return (
            f"{policy['max_attempts']} attempts, backoff {policy['backoff_base']}s doubling "
            f"up to {policy['backoff_cap']}s{' with jitter' if policy['jitter'] else ''}; "
            f"retries on {', '.join(policy['retry_on'])}"
        )
