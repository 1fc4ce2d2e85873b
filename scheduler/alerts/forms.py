"""Forms of alerting's admin: a channel, whose secrets are typed but never shown again, and a
schedule's alert overrides, each saying what the platform default is."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from scheduler.alerts import effective as config
from scheduler.alerts.channels.sentry import validate_dsn
from scheduler.alerts.models import AlertChannel, AlertPolicy
from scheduler.secret_field import SecretField

Kind = AlertChannel.Kind
KEEP = "Stored, not shown: leave empty to keep it."

#: The fields each kind of channel uses; the others do not apply to it (hidden, not checked,
#: and emptied when a new channel is saved).
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    Kind.EMAIL: ("recipients",),
    Kind.WEBHOOK: ("url", "webhook_format", "signing_secret", "clear_signing_secret", "timeout"),
    Kind.SENTRY: ("sentry_dsn", "clear_sentry_dsn", "timeout"),
}
#: Fields of some kinds only, with the value that means "not used".
KIND_ONLY_BLANK: dict[str, Any] = {
    "recipients": "",
    "url": "",
    "webhook_format": AlertChannel.Format.JSON,
    "signing_secret": "",
    "sentry_dsn": "",
}
#: A secret and the checkbox that removes it (offered only when a value is stored).
CLEARABLE = {"signing_secret": "clear_signing_secret", "sentry_dsn": "clear_sentry_dsn"}
#: Seconds to wait for a receiver when none is given.
DEFAULT_TIMEOUT = AlertChannel._meta.get_field("timeout").default


def page_fields(channel: AlertChannel | None) -> tuple[str, ...]:
    """The kinds' fields on a channel's page: every kind's on a new channel's (a script shows
    the picked kind's), its own kind's on a stored one's; a checkbox removing a secret only
    when a secret is stored."""
    stored = channel is not None and channel.pk is not None
    if stored:
        names = KIND_FIELDS.get(channel.kind, ())
    else:
        names = tuple(dict.fromkeys(name for names in KIND_FIELDS.values() for name in names))
    secret_of = {checkbox: secret for secret, checkbox in CLEARABLE.items()}
    return tuple(
        name
        for name in names
        if name not in secret_of or (stored and getattr(channel, secret_of[name]))
    )


class AlertChannelForm(forms.ModelForm):
    url = SecretField(label="Webhook URL", help_text="Webhook: where to POST (http or https).")
    signing_secret = SecretField(
        label="Signing secret",
        help_text="Webhook: the key of the X-Jobs-Signature HMAC (recommended).",
    )
    sentry_dsn = SecretField(label="Sentry DSN", help_text="Sentry: empty uses SENTRY_DSN.")
    clear_signing_secret = forms.BooleanField(required=False, label="Remove the signing secret")
    clear_sentry_dsn = forms.BooleanField(required=False, label="Remove the DSN (use SENTRY_DSN)")

    class Meta:
        model = AlertChannel
        fields = [
            "name",
            "kind",
            "enabled",
            "is_default",
            "recipients",
            "url",
            "webhook_format",
            "signing_secret",
            "timeout",
            "sentry_dsn",
        ]
        widgets = {"recipients": forms.Textarea(attrs={"rows": 3})}
        help_texts = {"timeout": "Webhook and Sentry: seconds to wait for the receiver."}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        stored = self.instance
        # A stored channel keeps its kind: only that kind's fields are on its page.
        self.kind = stored.kind if stored.pk else None
        used = set(page_fields(stored))
        for name in [*KIND_ONLY_BLANK, "timeout", *CLEARABLE.values()]:
            if name in self.fields and name not in used:
                del self.fields[name]
        for name in AlertChannel.SECRET_FIELDS:
            if name in self.fields and stored.pk and getattr(stored, name):
                self.fields[name].help_text = f"{self.fields[name].help_text} {KEEP}"
        for name in ("timeout", "webhook_format"):  # a default applies when left empty
            if name in self.fields:
                self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        stored = self.instance
        kind = self.kind or data.get("kind")
        for name in AlertChannel.SECRET_FIELDS:  # blank keeps what is stored
            if name in self.fields and not data.get(name) and stored.pk:
                data[name] = getattr(stored, name)
        for secret, checkbox in CLEARABLE.items():
            if data.get(checkbox):
                data[secret] = ""
        if kind in KIND_FIELDS:  # what another kind would use is not kept
            for name, blank in KIND_ONLY_BLANK.items():
                if name in self.fields and name not in KIND_FIELDS[kind]:
                    data[name] = blank
        if "timeout" in self.fields and data.get("timeout") is None:
            data["timeout"] = DEFAULT_TIMEOUT
        if "webhook_format" in self.fields and not data.get("webhook_format"):
            data["webhook_format"] = AlertChannel.Format.JSON
        if kind == Kind.EMAIL:
            self._clean_recipients(data)
        elif kind == Kind.WEBHOOK:
            self._clean_url(data)
        elif kind == Kind.SENTRY:
            self._clean_dsn(data)
        return data

    def _clean_recipients(self, data: dict[str, Any]) -> None:
        probe = AlertChannel(recipients=data.get("recipients") or "")
        addresses = probe.recipient_list()
        if not addresses:
            self.add_error("recipients", "An email channel needs at least one address.")
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                self.add_error("recipients", f"Not an email address: {address}")

    def _clean_url(self, data: dict[str, Any]) -> None:
        url = (data.get("url") or "").strip()
        data["url"] = url
        if not url:
            self.add_error("url", "A webhook channel needs a URL.")
            return
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            # The value is a secret: the message never repeats it.
            self.add_error("url", "Not a valid http(s) URL.")

    def _clean_dsn(self, data: dict[str, Any]) -> None:
        dsn = (data.get("sentry_dsn") or "").strip()
        data["sentry_dsn"] = dsn
        if not dsn:
            if not settings.SENTRY_DSN:
                self.add_error("sentry_dsn", "Give a DSN: SENTRY_DSN is not set either.")
            return
        try:
            validate_dsn(dsn)
        except Exception:
            self.add_error("sentry_dsn", "Not a valid Sentry DSN (https://key@host/project).")


def masked_destination(channel: AlertChannel) -> str:
    """Where a channel sends, without its secrets."""
    if channel.kind == Kind.EMAIL:
        return ", ".join(channel.recipient_list()) or "no recipients"
    if channel.kind == Kind.WEBHOOK:
        host = urlsplit(channel.url).hostname if channel.url else None
        signed = "signed" if channel.signing_secret else "unsigned"
        return f"{host}/… ({signed})" if host else "no URL"
    if channel.sentry_dsn:
        return f"{urlsplit(channel.sentry_dsn).hostname or '?'} (own DSN)"
    return "SENTRY_DSN" if settings.SENTRY_DSN else "no DSN"


class DefaultSelect(forms.NullBooleanSelect):
    """Yes / no / the platform default, naming the default."""

    def __init__(self, default: bool, attrs: dict | None = None):
        super().__init__(attrs)
        self.choices = [
            ("unknown", f"Default ({'yes' if default else 'no'})"),
            ("true", "Yes"),
            ("false", "No"),
        ]


class AlertPolicyForm(forms.ModelForm):
    class Meta:
        model = AlertPolicy
        fields = [
            "on_failure",
            "failure_threshold",
            "on_recovery",
            "on_missed",
            "grace",
            "max_runtime",
            "reminder_interval",
            "channels",
            "callback_channel",
        ]
        widgets = {"channels": forms.CheckboxSelectMultiple}
        error_messages = {
            "callback_channel": {
                "invalid_choice": "Pick an enabled webhook channel: only a webhook takes "
                "completion callbacks."
            }
        }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        base = config.defaults()
        for name in ("on_failure", "on_recovery", "on_missed"):
            self.fields[name].widget = DefaultSelect(getattr(base, name))
        shown = {
            "failure_threshold": base.failure_threshold,
            "grace": f"{base.grace} s",
            "max_runtime": f"{base.max_runtime} s" if base.max_runtime else "none",
            "reminder_interval": f"{base.reminder_interval} s"
            if base.reminder_interval
            else "none",
        }
        for name, default in shown.items():
            field = self.fields[name]
            field.help_text = f"{field.help_text} Empty: the default ({default})."
        channels = self.fields["channels"]
        channels.queryset = AlertChannel.objects.filter(enabled=True)
        defaults = ", ".join(c.name for c in config.default_channels()) or "none yet"
        channels.help_text = f"None picked: the default channels ({defaults})."
        callback = self.fields["callback_channel"]
        callback.queryset = AlertChannel.objects.filter(kind=Kind.WEBHOOK, enabled=True)
        callback.empty_label = "none"
