"""The web room's own data: the API's tokens."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

#: Every token starts so, which makes a leaked one easy to find (secret scanners, logs).
TOKEN_PREFIX = "jobs_"


def hash_token(token: str) -> str:
    """The stored form of a token. A token holds 256 random bits, so a fast hash is as safe
    as a slow one and lets a request find its token by one indexed lookup."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> ApiTokenQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiToken(models.Model):
    """A per-user key to the HTTP API. It acts as its user: the user's groups and
    permissions decide what it may do. Only its hash is kept; the token itself is shown once,
    when it is made."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'shop backend'.")
    #: The first characters of the token, to tell tokens apart in lists.
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the token does not expire."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user: models.Model, name: str, **fields: object) -> tuple[ApiToken, str]:
        """Make a token for ``user``: the saved row and the token, which is not kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(
            user=user, name=name, prefix=token[:12], key_hash=hash_token(token), **fields
        )
        return row, token

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > timezone.now()
        )


class RateWindow(models.Model):
    """Requests counted for one client and scope in one fixed window of time: the API's rate
    limit, kept in the database so every web process counts the same."""

    key = models.CharField(max_length=200)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "API rate window"
        constraints = [
            models.UniqueConstraint(fields=["key", "window_start"], name="ratewindow_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} @ {self.window_start:%H:%M:%S}: {self.count}"
