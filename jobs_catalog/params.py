"""Typed job parameters: declared as the job function's signature, validated by pydantic.

A parameter is a keyword of the job function. Its annotation is its type (``str``, ``int``,
``float``, ``bool``, ``list[str]``, ``dict[str, str]``, ``Literal[...]`` for choices, an
``Enum``...), its default makes it optional, and :func:`Param` adds help text, bounds and the
``secret`` flag::

    def ping(url: str, method: Literal["GET", "HEAD"] = "GET",
             token: str = Param("", secret=True, help="Bearer token")): ...
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from jobs_catalog.context import JobContext
from jobs_catalog.errors import FieldError, JobDefinitionError, ParameterError

SECRET_KEY = "secret"
MASK = "********"


def Param(  # noqa: N802 - reads like a type in a signature, as pydantic's Field does
    default: Any = PydanticUndefined,
    *,
    help: str | None = None,
    secret: bool = False,
    title: str | None = None,
    **constraints: Any,
) -> Any:
    """Declare a parameter's default, help text, and whether it is secret.

    ``constraints`` are pydantic's (``ge``, ``le``, ``min_length``, ``pattern``...). A secret
    parameter is masked wherever parameters are shown or stored for people to read.
    """
    extra = {SECRET_KEY: True} if secret else None
    return Field(default, description=help, title=title, json_schema_extra=extra, **constraints)


@dataclass(frozen=True)
class ParamInfo:
    """One parameter, as the CLI and the admin present it."""

    name: str
    type: str
    required: bool
    default: Any
    choices: tuple[Any, ...] | None
    help: str
    secret: bool


def build_params_model(job_name: str, func: Any) -> tuple[type[BaseModel], str | None]:
    """The pydantic model of ``func``'s parameters, and the name of its ``JobContext``
    parameter if it has one."""
    signature = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # an unresolvable forward reference
        raise JobDefinitionError(f"job {job_name!r}: cannot read its annotations: {exc}") from exc
    fields: dict[str, Any] = {}
    context_arg = None
    for name, parameter in signature.parameters.items():
        annotation = hints.get(name, Any)
        if annotation is JobContext:
            context_arg = name
            continue
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise JobDefinitionError(
                f"job {job_name!r}: *{name} is not allowed; declare every parameter by name"
            )
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise JobDefinitionError(f"job {job_name!r}: parameter {name!r} is positional-only")
        if name.startswith("_"):
            raise JobDefinitionError(f"job {job_name!r}: parameter {name!r} starts with '_'")
        default = parameter.default
        if isinstance(default, FieldInfo):
            fields[name] = (annotation, default)
        elif default is parameter.empty:
            fields[name] = (annotation, ...)
        else:
            fields[name] = (annotation, default)
    model_name = "".join(part.title() for part in job_name.replace(".", "_").split("_"))
    try:
        model = create_model(
            f"{model_name}Params",
            __config__=ConfigDict(extra="forbid", validate_default=True),
            **fields,
        )
    except Exception as exc:
        raise JobDefinitionError(f"job {job_name!r}: bad parameter declaration: {exc}") from exc
    return model, context_arg


def validate_params(job_name: str, model: type[BaseModel], data: Any) -> BaseModel:
    """Validate ``data`` or raise :class:`ParameterError` naming each failing field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParameterError(job_name, [FieldError("(parameters)", "must be a mapping")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ParameterError(job_name, _field_errors(exc, model)) from None


def _field_errors(exc: ValidationError, model: type[BaseModel]) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(parameters)"
        if error["type"] == "missing":
            message = "required parameter is missing"
        elif error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            declared = ", ".join(model.model_fields) or "none"
            message = f"unexpected parameter (declared: {declared})"
        else:
            message = error["msg"]
        errors.append(FieldError(field, message))
    return errors


def secret_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for name, info in model.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get(SECRET_KEY)
    )


def mask_params(params: dict[str, Any], secrets: frozenset[str]) -> dict[str, Any]:
    """A copy of ``params`` fit to show or store: secret values replaced by a mask."""
    return {k: (MASK if k in secrets and v not in (None, "") else v) for k, v in params.items()}


def describe_params(model: type[BaseModel]) -> list[ParamInfo]:
    secrets = secret_fields(model)
    out = []
    for name, info in model.model_fields.items():
        choices = choices_of(info.annotation)
        required = info.is_required()
        default = None if required else info.get_default(call_default_factory=True)
        out.append(
            ParamInfo(
                name=name,
                type=_type_name(info.annotation),
                required=required,
                default=default,
                choices=choices,
                help=info.description or "",
                secret=name in secrets,
            )
        )
    return out


def choices_of(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a ``Literal`` or ``Enum`` annotation, else None."""
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(member.value for member in annotation)
    return None


def _type_name(annotation: Any) -> str:
    """A readable name: ``list[DownloadItem]``, ``int | None``; validators and module paths
    left out (the admin and the CLI show it)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "choice"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(arg) for arg in args)
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin).replace("typing.", ""))
        return f"{name}[{', '.join(_type_name(arg) for arg in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")
