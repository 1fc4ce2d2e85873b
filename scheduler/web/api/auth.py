"""Who is calling: a per-user bearer token (``Authorization: Bearer jobs_…``), and what the
token's user may do (the user's groups and permissions, as in the admin)."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from scheduler.web.api.errors import ApiError
from scheduler.web.models import ApiToken, hash_token

#: ``last_used_at`` is written at most this often per token (not on every request).
LAST_USED_EVERY = timedelta(minutes=1)


class TokenAuth(HttpBearer):
    """Finds the token by its hash (one indexed read); the request then acts as its user."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        row = (
            ApiToken.objects.usable()
            .select_related("user")
            .filter(key_hash=hash_token(token.strip()))
            .first()
        )
        if row is None or not row.user.is_active:
            return None
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        request.user = row.user
        return row


def require(request: HttpRequest, *permissions: str) -> None:
    """Refuse (403) unless the caller holds every one of ``permissions``."""
    missing = [p for p in permissions if not request.user.has_perm(p)]
    if missing:
        raise ApiError(
            403,
            "permission_denied",
            f"This token's user ({request.user.get_username()}) lacks the permission "
            f"{', '.join(missing)}.",
        )
