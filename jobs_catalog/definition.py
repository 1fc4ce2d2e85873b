"""A catalog job: the function, its parameters and its policies, in one immutable object."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from jobs_catalog.context import JobContext
from jobs_catalog.errors import JobDefinitionError
from jobs_catalog.params import (
    ParamInfo,
    build_params_model,
    describe_params,
    mask_params,
    secret_fields,
    validate_params,
)
from jobs_catalog.queues import queue_name_problem
from jobs_catalog.retry import RetryPolicy
from jobs_catalog.secrets import unseal_params

#: Lower-case words joined by dots, at least two: "builtin.http_request", "acme.billing.sync".
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True, eq=False)
class Job:
    name: str
    func: Callable[..., Any]
    title: str
    description: str = ""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    soft_time_limit: int | None = None
    time_limit: int | None = None
    queue: str | None = None
    source: str = ""
    #: The job checks ``ctx.cancelled`` and stops between chunks: a cancel of its running run
    #: lets it stop by itself (killed only after ``JOBS_CANCEL_GRACE`` seconds).
    cancellable: bool = False

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name):
            raise JobDefinitionError(
                f"job name {self.name!r} is not a stable dotted name: use lower-case words "
                "joined by dots, at least two (e.g. 'acme.send_report')"
            )
        if not isinstance(self.retry, RetryPolicy):
            raise JobDefinitionError(
                f"job {self.name!r}: retry must be a RetryPolicy(...), not {self.retry!r}"
            )
        for limit in ("soft_time_limit", "time_limit"):
            value = getattr(self, limit)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value <= 0
            ):
                raise JobDefinitionError(
                    f"job {self.name!r}: {limit} must be positive (a whole number of "
                    f"seconds), not {value!r}"
                )
        if not isinstance(self.cancellable, bool):
            raise JobDefinitionError(
                f"job {self.name!r}: cancellable must be True or False, not {self.cancellable!r}"
            )
        if self.queue is not None and (problem := queue_name_problem(self.queue)):
            raise JobDefinitionError(f"job {self.name!r}: {problem}")
        if self.soft_time_limit and self.time_limit and self.soft_time_limit >= self.time_limit:
            raise JobDefinitionError(
                f"job {self.name!r}: soft_time_limit ({self.soft_time_limit}s) must be below "
                f"time_limit ({self.time_limit}s), or the job never gets to clean up"
            )
        # Build the parameter model now so a bad declaration fails at import time.
        self.__dict__["_model"], self.__dict__["_context_arg"] = build_params_model(
            self.name, self.func
        )

    @property
    def module(self) -> str:
        return self.func.__module__

    @property
    def origin(self) -> str:
        """Where the job is defined, for messages: ``module.function (source)``."""
        where = f"{self.module}.{self.func.__qualname__}"
        return f"{where} ({self.source})" if self.source else where

    @property
    def params_model(self) -> type[BaseModel]:
        return self.__dict__["_model"]

    @cached_property
    def secret_fields(self) -> frozenset[str]:
        return secret_fields(self.params_model)

    def params(self) -> list[ParamInfo]:
        return describe_params(self.params_model)

    def params_schema(self) -> dict[str, Any]:
        """JSON Schema of the parameters (secret ones carry ``"secret": true``)."""
        return self.params_model.model_json_schema()

    def defaults(self) -> dict[str, Any]:
        """Default values, JSON-ready (an Enum default becomes its value)."""
        return {p.name: to_jsonable_python(p.default) for p in self.params() if not p.required}

    def validate(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validated parameters as JSON-ready values, for storing and sending.

        Raises :class:`~jobs_catalog.errors.ParameterError` naming the job and each field.
        """
        model = validate_params(self.name, self.params_model, _as_dict(params))
        return model.model_dump(mode="json")

    def mask(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters fit to show a person: secret values replaced."""
        return mask_params(dict(params), self.secret_fields)

    def call(self, params: Mapping[str, Any] | None, context: JobContext | None = None) -> Any:
        """Open sealed secret values, validate ``params`` and run the job in this process.

        Raises :class:`~jobs_catalog.secrets.SecretError` when no key here opens a secret.
        """
        given = _as_dict(params)
        if isinstance(given, dict) and self.secret_fields:
            given = unseal_params(given, self.secret_fields)
        model = validate_params(self.name, self.params_model, given)
        kwargs = {name: getattr(model, name) for name in type(model).model_fields}
        context_arg = self.__dict__["_context_arg"]
        if context_arg:
            kwargs[context_arg] = context or JobContext(job=self.name)
        return self.func(**kwargs)

    def effective_time_limits(self, default_soft: int, default_hard: int) -> tuple[int, int]:
        """(soft, hard) seconds: the job's own, else the platform defaults, kept soft < hard."""
        soft = self.soft_time_limit or default_soft
        hard = self.time_limit or default_hard
        if self.time_limit is None:
            hard = max(hard, soft + 1)
        if self.soft_time_limit is None:
            soft = min(soft, max(hard - 1, 1))
        return soft, hard


def _as_dict(params: Any) -> Any:
    # A non-mapping is passed through so validation reports it by name.
    if params is None:
        return {}
    return dict(params) if isinstance(params, Mapping) else params
