"""Input the database and JSON can hold: no text with the NUL character (PostgreSQL refuses
it in text and JSON columns) and no NaN or infinite number (JSON has none; Python's parser
lets them in). Checked for every operation on its validated arguments (path, query and JSON
body; the upload form checks its own fields), so each refusal is a 422 naming the field rather
than a database error."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from pydantic import BaseModel

from scheduler.web.api.errors import ApiError

NUL = "\x00"


def problems(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(field path, problem) for each value in ``value`` that cannot be stored."""
    if isinstance(value, str):
        if NUL in value:
            yield where or "request", "may not contain the NUL character (\\u0000)"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield where or "request", "must be a finite number"
    elif isinstance(value, BaseModel):
        yield from problems(value.model_dump(), where)
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and NUL in key:
                yield where or "request", "a key may not contain the NUL character (\\u0000)"
            yield from problems(item, path)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from problems(item, f"{where}.{index}" if where else str(index))


def refuse(value: Any, where: str = "") -> None:
    """Raise a 422 naming every field of ``value`` that cannot be stored."""
    fields: dict[str, list[str]] = {}
    for path, problem in problems(value, where):
        fields.setdefault(path, []).append(problem)
    if fields:
        raise ApiError(422, "invalid_request", "The request is invalid.", fields)


def refuse_unstorable(view: Callable[..., Any]) -> Callable[..., Any]:
    """An operation decorator: the view runs only when every argument can be stored. A
    schema argument (a body or a query model) is named by its own fields, as a client wrote
    them."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        given: dict[str, Any] = {}
        for name, value in kwargs.items():
            if isinstance(value, BaseModel):
                given.update(value.model_dump())
            elif not isinstance(value, HttpResponse):
                given[name] = value
        refuse(given)
        return view(request, *args, **kwargs)

    return checked
