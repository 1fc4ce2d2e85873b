"""The form field of a secret (a job's secret parameter, a channel's URL or DSN), shared by the
schedule form and the alert channel form."""

from __future__ import annotations

from typing import Any

from django import forms


class SecretField(forms.CharField):
    """A secret: typed in a password input, never shown, not even after a failed save."""

    def __init__(self, *, parse_json: bool = False, **kwargs: Any):
        self.parse_json = parse_json
        kwargs.setdefault(
            "widget",
            forms.PasswordInput(
                render_value=False, attrs={"autocomplete": "new-password", "class": "vTextField"}
            ),
        )
        kwargs["required"] = False  # blank keeps the stored value; see ScheduleForm.clean
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not self.parse_json or text in self.empty_values:
            return text
        return forms.JSONField().to_python(text)

    def has_changed(self, initial: Any, data: Any) -> bool:
        return data not in self.empty_values
