"""One JSON shape for every refusal: ``{"error": {"code", "message", "fields"?}}``, with the
HTTP status that says what kind it is. Field errors (422) name each parameter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse


class ApiError(Exception):
    """Raised by an endpoint: answered with ``status`` and the error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Mapping[str, Sequence[str]] | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = {k: list(v) for k, v in (fields or {}).items()}
        self.extra = extra


def error_response(
    status: int,
    code: str,
    message: str,
    fields: Mapping[str, Sequence[str]] | None = None,
    **extra: Any,
) -> HttpResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = {k: list(v) for k, v in fields.items()}
    body.update(extra)
    return JsonResponse({"error": body}, status=status)


def from_api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error_response(exc.status, exc.code, exc.message, exc.fields, **exc.extra)


def field_errors_of_pydantic(errors: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """django-ninja's request validation errors, keyed by a dotted field path (without the
    ``body``/``query`` prefix a client did not write)."""
    out: dict[str, list[str]] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in {"body", "query", "path", "header", "form", "file"}:
            loc = loc[1:]
        if len(loc) > 1 and loc[0] in {"payload", "data", "body"}:
            loc = loc[1:]
        out.setdefault(".".join(loc) or "request", []).append(str(error.get("msg", "invalid")))
    return out
