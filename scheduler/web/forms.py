"""The schedule form: a catalog job's parameters as typed form fields, its cron and time zone
validated, and the small forms of the pause and backfill actions.

A parameter's annotation picks its field (each field is named ``param__<name>``):

==============================================  ===============================================
``str`` (and ``Path``, ``UUID``, dates...)      text input
``int`` / ``float``                             number input, bounded by the schema's limits
``bool``                                        checkbox (``bool | None``: a yes/no/unknown select)
``Literal[...]`` / ``Enum``                     select
``list[str]``, ``list[int]``... (scalar items)  textarea, one item per line (commas also split
                                                when items are not plain text)
``dict[str, scalar]``                           textarea of ``key: value`` lines
anything else                                   a JSON textarea for that one parameter
secret (``Param(secret=True)``)                 password input that never shows a value; left
                                                blank on edit, the stored value is kept
==============================================  ===============================================

The job's own ``validate()`` (through :func:`scheduler.schedules.periodic.clean_schedule`)
has the last word; its errors are put back on the parameter's field.
"""

from __future__ import annotations

import enum
import types
import typing
import uuid
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal
from functools import lru_cache
from pathlib import PurePath
from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.utils import pretty_name
from django.utils import timezone
from django.utils.html import format_html

from jobs_catalog.definition import Job
from jobs_catalog.models import JobDefinition
from jobs_catalog.params import ParamInfo, choices_of
from jobs_catalog.registry import registry
from scheduler.internal_tasks import internal
from scheduler.policies import cron
from scheduler.runs import actions as run_actions
from scheduler.schedules.models import Schedule
from scheduler.schedules.periodic import clean_schedule
from scheduler.secret_field import SecretField
from scheduler.web.views import preview_payload

PARAM_PREFIX = "param__"
CLEAR_PREFIX = "clear__"

#: Types pydantic builds from a string: entered in a plain text input.
STRING_LIKE = (str, PurePath, uuid.UUID, date, datetime, time, Decimal)
#: Zone names that are aliases of the machine's own zone, not real places.
HIDDEN_ZONES = frozenset({"localtime", "posixrules", "Factory"})


class Kind(enum.StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    CHOICE = "choice"
    LIST = "list"
    MAPPING = "mapping"
    JSON = "json"


def param_field_name(name: str) -> str:
    return f"{PARAM_PREFIX}{name}"


def clear_field_name(name: str) -> str:
    return f"{CLEAR_PREFIX}{name}"


@lru_cache(maxsize=1)
def timezone_names() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones() - HIDDEN_ZONES))


# --- parameters: from annotation to form field ---------------------------------------------
@dataclass(frozen=True)
class ParamSpec:
    """One parameter and how the form shows it."""

    info: ParamInfo
    kind: Kind
    nullable: bool
    #: Items of a list kind are also split on commas (they are not plain text).
    split_commas: bool
    #: The choices as (value, shown text), for the choice kind.
    choices: tuple[Any, ...]
    schema: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def field_name(self) -> str:
        return param_field_name(self.info.name)


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    annotation = _strip_annotated(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = tuple(arg for arg in args if arg is not type(None))
        if len(rest) == 1 and len(rest) < len(args):
            return _strip_annotated(rest[0]), True
        if len(rest) < len(args):
            return typing.Union[rest], True  # noqa: UP007 - built from a tuple at run time
    return annotation, False


def _is_scalar(annotation: Any) -> bool:
    annotation = _strip_annotated(annotation)
    if choices_of(annotation) is not None:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(_is_scalar(arg) for arg in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, (int, float, *STRING_LIKE))


def classify(annotation: Any) -> tuple[Kind, bool, bool]:
    """(kind, accepts None, list items split on commas) for a parameter's annotation."""
    annotation, nullable = _unwrap_optional(annotation)
    if choices_of(annotation) is not None:
        return Kind.CHOICE, nullable, False
    if annotation is bool:
        return Kind.BOOLEAN, nullable, False
    if annotation is int:
        return Kind.INTEGER, nullable, False
    if annotation is float:
        return Kind.FLOAT, nullable, False
    if isinstance(annotation, type) and issubclass(annotation, STRING_LIKE):
        return Kind.TEXT, nullable, False
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        args = args[:1]
    sequence = origin in (list, set, frozenset, tuple, Sequence)
    if sequence and len(args) == 1 and _is_scalar(args[0]):
        return Kind.LIST, nullable, _strip_annotated(args[0]) is not str
    mapping = origin in (dict, Mapping) and len(args) == 2
    if mapping and _strip_annotated(args[0]) is str and _is_scalar(args[1]):
        return Kind.MAPPING, nullable, False
    return Kind.JSON, nullable, False


def param_specs(job: Job) -> list[ParamSpec]:
    schema = job.params_schema().get("properties", {})
    fields = job.params_model.model_fields
    specs = []
    for info in job.params():
        kind, nullable, split_commas = classify(fields[info.name].annotation)
        choices = ()
        if kind is Kind.CHOICE:
            annotation = _unwrap_optional(fields[info.name].annotation)[0]
            choices = choices_of(annotation) or ()
        specs.append(
            ParamSpec(
                info=info,
                kind=kind,
                nullable=nullable,
                split_commas=split_commas,
                choices=choices,
                schema=_property_schema(schema.get(info.name, {})),
            )
        )
    return specs


def _property_schema(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """The schema of a value, looking through ``X | None``'s ``anyOf``."""
    for option in prop.get("anyOf", ()):
        if option.get("type") != "null":
            return {**prop, **option}
    return prop


class _TextCollectionField(forms.CharField):
    """A collection typed as lines in a textarea; empty means an empty collection."""

    def validate(self, value: Any) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(self.prepare_value(initial)) != self.to_python(data)
        except ValidationError:
            return True


class LinesField(_TextCollectionField):
    """A list, one item per line (and, with ``split_commas``, also separated by commas)."""

    def __init__(self, *, split_commas: bool = False, **kwargs: Any):
        self.split_commas = split_commas
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple | set | frozenset):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        text = super().to_python(value) or ""
        lines = text.splitlines()
        if self.split_commas:
            lines = [part for line in lines for part in line.split(",")]
        return [item.strip() for item in lines if item.strip()]


class KeyValueField(_TextCollectionField):
    """A mapping of text keys, one ``key: value`` per line."""

    widget = forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"})

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return "\n".join(f"{key}: {item}" for key, item in value.items())
        return value

    def to_python(self, value: Any) -> dict[str, str]:
        text = super().to_python(value) or ""
        out: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, item = line.partition(":")
            key = key.strip()
            if not sep or not key:
                raise ValidationError(
                    "Line %(number)d: write it as 'key: value'.",
                    code="invalid",
                    params={"number": number},
                )
            if key in out:
                raise ValidationError(
                    "Line %(number)d: %(key)s is given twice.",
                    code="duplicate",
                    params={"number": number, "key": key},
                )
            out[key] = item.strip()
        return out


def _help_text(spec: ParamSpec, editing: bool) -> str:
    info = spec.info
    parts = [info.help.rstrip(".") + "." if info.help else ""]
    if info.secret:
        parts.append("Secret: never shown once saved.")
        if editing:
            parts.append("Leave blank to keep the stored value.")
        if spec.kind in (Kind.LIST, Kind.MAPPING, Kind.JSON):
            parts.append("Enter it as JSON.")
    elif spec.kind is Kind.LIST:
        parts.append(
            "One item per line"
            + (" (or separated by commas)." if spec.split_commas else ".")
            + " An empty box is an empty list."
        )
    elif spec.kind is Kind.MAPPING:
        parts.append("One 'key: value' per line.")
    elif spec.kind is Kind.JSON:
        parts.append(f"A JSON value ({info.type}).")
    if not info.required and spec.kind in (Kind.INTEGER, Kind.FLOAT, Kind.JSON):
        parts.append(f"Blank: the default ({_shown_default(info.default)}).")
    # The label is for people ("Older than days"); the hint names the parameter as the job's
    # code and the run's page do.
    text = " ".join(part for part in parts if part)
    return format_html("<code>{}</code>{}", info.name, f": {text}" if text else "")


def _shown_default(value: Any) -> str:
    return "none" if value is None else repr(value)


def build_param_field(spec: ParamSpec, editing: bool) -> forms.Field:
    info, schema = spec.info, spec.schema
    common: dict[str, Any] = {
        "label": pretty_name(info.name),
        "required": info.required,
        "help_text": _help_text(spec, editing),
    }
    if info.secret:
        return SecretField(parse_json=spec.kind in (Kind.LIST, Kind.MAPPING, Kind.JSON), **common)
    if spec.kind is Kind.CHOICE:
        by_key = {str(value): value for value in spec.choices}
        choices = [(key, key) for key in by_key]
        if not info.required and info.default is None:
            choices.insert(0, ("", "---------"))
            common["required"] = False
        else:
            common["required"] = True
        return forms.TypedChoiceField(
            choices=choices, coerce=by_key.__getitem__, empty_value=None, **common
        )
    if spec.kind is Kind.BOOLEAN:
        if spec.nullable:
            return forms.NullBooleanField(**{**common, "required": False})
        return forms.BooleanField(**{**common, "required": False})
    if spec.kind in (Kind.INTEGER, Kind.FLOAT):
        low, high = schema.get("minimum"), schema.get("maximum")
        field_class: type[forms.Field] = forms.FloatField
        if spec.kind is Kind.INTEGER:
            field_class = forms.IntegerField
            if "exclusiveMinimum" in schema:
                low = schema["exclusiveMinimum"] + 1
            if "exclusiveMaximum" in schema:
                high = schema["exclusiveMaximum"] - 1
        return field_class(min_value=low, max_value=high, **common)
    if spec.kind is Kind.LIST:
        return LinesField(split_commas=spec.split_commas, **common)
    if spec.kind is Kind.MAPPING:
        return KeyValueField(**common)
    if spec.kind is Kind.JSON:
        return forms.JSONField(widget=forms.Textarea(attrs={"rows": 4}), **common)
    return forms.CharField(
        max_length=schema.get("maxLength"),
        strip=False,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
        **common,
    )


def build_param_fields(job: Job | None, editing: bool) -> dict[str, forms.Field]:
    """The form fields of ``job``'s parameters, in declaration order; on edit, a non-required
    secret also gets a "clear the stored value" checkbox."""
    fields: dict[str, forms.Field] = {}
    if job is None:
        return fields
    for spec in param_specs(job):
        fields[spec.field_name] = build_param_field(spec, editing)
        if editing and spec.info.secret and not spec.info.required:
            fields[clear_field_name(spec.name)] = forms.BooleanField(
                label=f"Clear {pretty_name(spec.name).lower()}",
                required=False,
                help_text="Remove the stored value; the job's default applies.",
            )
    return fields


def job_of(definition: JobDefinition | None) -> Job | None:
    """The code of a catalog entry, or ``None`` when it is not installed here."""
    return None if definition is None else registry.find(definition.name)


# --- widgets --------------------------------------------------------------------------------
class CronInput(forms.TextInput):
    """The cron input, with its expression in words and the next fire times beside it; a
    small script refreshes them as one types (``preview_url``)."""

    template_name = "scheduler/widgets/cron_input.html"

    def __init__(self, attrs: dict[str, Any] | None = None):
        super().__init__(
            {"class": "vTextField scheduler-cron", "spellcheck": "false", "autocomplete": "off"}
            | (attrs or {})
        )
        self.preview: dict[str, Any] | None = None
        self.preview_url: str | None = None
        self.timezone_input_id = "id_timezone"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict:
        context = super().get_context(name, value, attrs)
        context["widget"].update(
            preview=self.preview,
            preview_url=self.preview_url,
            timezone_input_id=self.timezone_input_id,
        )
        return context

    class Media:
        js = ("scheduler/cron_preview.js",)
        css = {"all": ("scheduler/admin.css",)}


class TimezoneInput(forms.TextInput):
    """A text input suggesting every IANA zone name."""

    template_name = "scheduler/widgets/timezone_input.html"

    def __init__(self, attrs: dict[str, Any] | None = None):
        super().__init__({"class": "vTextField", "autocomplete": "off"} | (attrs or {}))

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict:
        context = super().get_context(name, value, attrs)
        list_id = f"{context['widget']['attrs'].get('id') or name}_zones"
        context["widget"]["attrs"]["list"] = list_id
        context["widget"].update(zones=timezone_names(), list_id=list_id)
        return context


class ZonedSplitDateTimeField(forms.SplitDateTimeField):
    """A date and a time read and shown as wall time in ``zone`` (the schedule's zone), not in
    the site's zone."""

    widget = AdminSplitDateTime

    def __init__(self, *args: Any, zone: tzinfo = UTC, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.zone = zone

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, datetime) and timezone.is_aware(value):
            return value.astimezone(self.zone).replace(tzinfo=None)
        return value

    def compress(self, data_list: list[Any]) -> datetime | None:
        if not data_list:
            return None
        day, moment = data_list
        if day in self.empty_values:
            raise ValidationError(self.error_messages["invalid_date"], code="invalid_date")
        if moment in self.empty_values:
            raise ValidationError(self.error_messages["invalid_time"], code="invalid_time")
        wall = datetime.combine(day, moment)
        aware = wall.replace(tzinfo=self.zone)
        if aware.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != wall:
            raise ValidationError(
                "%(wall)s does not exist in %(zone)s (the clocks skip it).",
                code="nonexistent",
                params={"wall": f"{wall:%Y-%m-%d %H:%M}", "zone": self.zone},
            )
        return aware

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.clean(data) != initial
        except ValidationError:
            return True


def zone_or_utc(name: Any) -> tzinfo:
    try:
        return cron.validate_timezone(name)
    except cron.CronError:
        return UTC


# --- the schedule form ----------------------------------------------------------------------
SCHEDULE_FIELDS = (
    "name",
    "description",
    "cron",
    "timezone",
    "start_at",
    "end_at",
    "enabled",
    "overlap_policy",
    "misfire_policy",
    "catchup_window",
    "max_catchup_runs",
    "jitter",
    "queue",
    "retry_max_attempts",
    "retry_backoff_base",
    "retry_backoff_cap",
)


class ScheduleForm(forms.ModelForm):
    """A schedule of one job (``job_definition``; fixed once created). Build one for a job
    with :func:`schedule_form_class`."""

    job_definition: JobDefinition | None = None
    #: Where the script fetches the cron preview; None: the preview is shown on render only.
    preview_url: str | None = None

    start_at = ZonedSplitDateTimeField(
        label="Start",
        required=False,
        help_text="Not before this time, in the schedule's time zone.",
    )
    end_at = ZonedSplitDateTimeField(
        label="End",
        required=False,
        help_text="Not after this time, in the schedule's time zone.",
    )

    class Meta:
        model = Schedule
        fields = SCHEDULE_FIELDS
        widgets = {
            "cron": CronInput,
            "timezone": TimezoneInput,
            "description": forms.Textarea(attrs={"rows": 2, "class": "vLargeTextField"}),
        }
        help_texts = {
            "cron": "minute hour day-of-month month day-of-week, e.g. '30 2 * * 1-5', "
            "or a macro such as @daily.",
            "timezone": "An IANA zone name such as Europe/Berlin; the cron follows its "
            "wall clock, daylight-saving changes included.",
        }

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        definition = self.job_definition
        if definition is None and self.instance.job_id is not None:
            definition = self.instance.job
        if definition is not None and self.instance.job_id is None:
            self.instance.job = definition
        self.job = job_of(definition)
        self.specs = param_specs(self.job) if self.job is not None else []
        self.stored_params = dict(self.instance.params or {}) if self.instance.pk else {}
        zone = self._zone()
        for name in ("start_at", "end_at"):
            if name in self.fields:
                self.fields[name].zone = zone
        self._set_param_initials()
        self._set_retry_help(definition)
        if "cron" in self.fields:
            self._set_cron_preview()

    # --- set-up ---------------------------------------------------------------------------
    def _zone(self) -> tzinfo:
        if self.is_bound:
            name = self.data.get(self.add_prefix("timezone"))
            if name:
                try:
                    return cron.validate_timezone(name.strip())
                except cron.CronError:
                    pass
        return zone_or_utc(self.initial.get("timezone") or self.instance.timezone)

    def _set_param_initials(self) -> None:
        for spec in self.specs:
            if spec.field_name not in self.fields or spec.info.secret:
                continue
            if spec.name in self.stored_params:
                value = self.stored_params[spec.name]
            elif spec.info.required:
                continue
            else:
                value = spec.info.default
            if spec.kind is Kind.CHOICE and value is not None:
                value = str(value.value if isinstance(value, enum.Enum) else value)
            self.initial.setdefault(spec.field_name, value)
        for spec in self.specs:
            field = self.fields.get(spec.field_name)
            if field is None or not spec.info.secret or not self.instance.pk:
                continue
            stored = self.stored_params.get(spec.name) not in (None, "")
            state = "A value is stored." if stored else "No value is stored."
            field.help_text = format_html("{} {}", field.help_text, state)

    def _set_retry_help(self, definition: JobDefinition | None) -> None:
        policy = (definition.retry_policy if definition is not None else None) or {}
        own = {
            "retry_max_attempts": ("max_attempts", "attempts"),
            "retry_backoff_base": ("backoff_base", "seconds"),
            "retry_backoff_cap": ("backoff_cap", "seconds"),
        }
        for field_name, (key, unit) in own.items():
            if field_name in self.fields and key in policy:
                self.fields[field_name].help_text = f"Blank: the job's own ({policy[key]} {unit})."

    def _set_cron_preview(self) -> None:
        widget = self.fields["cron"].widget
        if not isinstance(widget, CronInput):
            return
        expr = self["cron"].value() or ""
        tz = self["timezone"].value() if "timezone" in self.fields else self.instance.timezone
        widget.preview = preview_payload(str(expr), str(tz or "")) if expr else None
        widget.preview_url = self.preview_url
        if "timezone" in self.fields:
            widget.timezone_input_id = self["timezone"].id_for_label

    # --- validation -----------------------------------------------------------------------
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for spec in self.specs:
            name = spec.field_name
            if not spec.info.secret or not spec.info.required or name not in cleaned:
                continue
            if cleaned[name] in (None, "") and self.stored_params.get(spec.name) in (None, ""):
                self.add_error(name, forms.Field.default_error_messages["required"])
        return cleaned

    def params_from_fields(self) -> dict[str, Any]:
        """The parameters as typed, before the job's validation. A field that failed its own
        check is left out (its error is already shown)."""
        if self.job is None:
            return dict(self.stored_params)
        params: dict[str, Any] = {}
        for spec in self.specs:
            name, info = spec.field_name, spec.info
            if name not in self.fields or name in self._errors or name not in self.cleaned_data:
                continue
            value = self.cleaned_data[name]
            if info.secret:
                if value not in (None, ""):
                    params[info.name] = value
                elif self.cleaned_data.get(clear_field_name(info.name)):
                    continue
                elif info.name in self.stored_params:
                    params[info.name] = self.stored_params[info.name]
                continue
            if value is None:
                continue  # blank: the default applies
            if spec.kind is Kind.TEXT and value == "" and spec.nullable and info.default is None:
                continue
            params[info.name] = value
        return params

    def _post_clean(self) -> None:
        super()._post_clean()
        schedule = self.instance
        if self.job_definition is not None:
            schedule.job = self.job_definition
        schedule.params = self.params_from_fields()
        try:
            clean_schedule(schedule)
        except ValidationError as exc:
            self._add_schedule_errors(exc)

    def _add_schedule_errors(self, exc: ValidationError) -> None:
        for field, messages in exc.message_dict.items():
            if field == "params":
                for text in messages:
                    self._add_param_error(text)
            elif field in self.fields:
                if field not in self._errors:
                    self.add_error(field, messages)
            else:
                self.add_error(None, messages)

    def _add_param_error(self, text: str) -> None:
        path, _, message = text.partition(": ")
        root, _, rest = path.partition(".")
        message = message.removeprefix("Value error, ")
        name = param_field_name(root)
        if name not in self.fields:
            self.add_error(None, text)
            return
        if name in self._errors:
            return
        if rest:
            where = f"item {int(rest) + 1}" if rest.isdigit() else rest
            message = f"{where}: {message}"
        self.add_error(name, message)


def schedule_form_class(
    definition: JobDefinition | None,
    *,
    editing: bool,
    preview_url: str | None = None,
    base: type[ScheduleForm] = ScheduleForm,
) -> type[ScheduleForm]:
    """A :class:`ScheduleForm` with the fields of ``definition``'s parameters."""
    attrs: dict[str, Any] = {
        "job_definition": definition,
        "preview_url": preview_url,
        **build_param_fields(job_of(definition), editing),
    }
    return type(base.__name__, (base,), attrs)


# --- the job picker and the actions' forms --------------------------------------------------
class JobChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: JobDefinition) -> str:
        return f"{obj.title} ({obj.name})" if obj.title != obj.name else obj.name


def offered_jobs() -> QuerySet:
    """The jobs a schedule can run: the catalog's available jobs, none of the platform's own
    tasks."""
    return JobDefinition.objects.filter(available=True).exclude(internal())


class JobPickForm(forms.Form):
    """Step one of adding a schedule: which catalog job."""

    job = JobChoiceField(
        queryset=offered_jobs().order_by("title", "name"),
        empty_label=None,
        help_text="Only jobs whose code is installed here are offered.",
    )


class PauseForm(forms.Form):
    note = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        help_text="Why it is paused; shown on the schedule until it is resumed.",
    )


class BackfillForm(forms.Form):
    """A time range, as wall time in the schedules' zone; occurrences in (start, end] run.
    A range the backfill of one of ``schedules`` would refuse is an error of the form, so the
    page shows it again with what was typed."""

    start = ZonedSplitDateTimeField(label="From", help_text="Exclusive.")
    end = ZonedSplitDateTimeField(label="Until", help_text="Inclusive; in the past.")

    def __init__(
        self,
        *args: Any,
        zone: tzinfo = UTC,
        schedules: Sequence[Schedule] = (),
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.fields["start"].zone = self.fields["end"].zone = zone
        self.schedules = list(schedules)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and end <= start:
            self.add_error("end", "The end must be after the start.")
        elif start and end:
            self._check_range(start, end)
        return cleaned

    def _check_range(self, start: datetime, end: datetime) -> None:
        refused: dict[str, list[str]] = {}
        for schedule in self.schedules:
            try:
                run_actions.backfill_times(schedule, start, end)
            except run_actions.BackfillRangeError as exc:
                refused.setdefault(str(exc), []).append(schedule.name)
            except ValueError:
                pass  # a schedule stored with a bad cron: the action reports it
        for reason, names in refused.items():
            if len(names) == len(self.schedules):
                self.add_error(None, reason)
            else:
                self.add_error(None, f"{', '.join(names)}: {reason}")
