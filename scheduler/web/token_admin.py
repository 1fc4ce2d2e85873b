"""API tokens in the admin: make one (shown once, then only its hash is kept), see when each
was last used, revoke. People see and revoke their own tokens; superusers everyone's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from scheduler.web.models import ApiToken


class TokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ("name", "user", "expires_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = TokenForm
    list_display = ("name", "user", "prefix_shown", "state", "created_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    actions = ("revoke",)
    readonly_fields = ("prefix_shown", "created_at", "last_used_at", "revoked_at")

    @admin.display(description="token")
    def prefix_shown(self, token: ApiToken) -> str:
        return f"{token.prefix}…"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        if token.revoked_at is not None:
            return "revoked"
        if token.expires_at is not None and token.expires_at <= timezone.now():
            return "expired"
        return "active"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        rows = super().get_queryset(request).select_related("user")
        return rows if request.user.is_superuser else rows.filter(user=request.user)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return (
                ["name", "user", "expires_at"]
                if request.user.is_superuser
                else [
                    "name",
                    "expires_at",
                ]
            )
        return ["name", "user", "prefix_shown", "expires_at", *self.readonly_fields[1:]]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple:
        if obj is None:
            return ()
        # A token's owner and expiry are fixed once made: make a new one instead.
        return ("user", "expires_at", *self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return super().has_change_permission(request, obj) and (
            obj is None or request.user.is_superuser or obj.user_id == request.user.pk
        )

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        owner = obj.user if request.user.is_superuser and obj.user_id else request.user
        row, token = ApiToken.issue(owner, obj.name, expires_at=obj.expires_at)
        obj.pk, obj.user, obj.prefix, obj.key_hash = row.pk, owner, row.prefix, row.key_hash
        obj.created_at = row.created_at
        request._api_token_shown_once = token  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        token = getattr(request, "_api_token_shown_once", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        # Rendered, not redirected: the token goes in this one response and nowhere else
        # (not in a message that a cookie would carry).
        return TemplateResponse(
            request,
            "admin/scheduler/apitoken/created.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "API token made",
                "token": token,
                "row": obj,
            },
        )

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{count} token(s) revoked.", messages.SUCCESS)
