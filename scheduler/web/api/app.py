"""The API itself: one NinjaAPI with token authentication on every endpoint, the routers, and
every error answered in the one shape of ``errors``."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.parser import Parser

from scheduler.web.api import jobs, runs, schedules, uploads
from scheduler.web.api.auth import TokenAuth
from scheduler.web.api.errors import (
    ApiError,
    error_response,
    field_errors_of_pydantic,
    from_api_error,
)
from scheduler.web.api.storable import refuse_unstorable

#: JSON's names of what a body held instead of an object.
_JSON_KINDS = {list: "an array", str: "a string", bool: "a boolean"}


class NotAnObjectError(ValueError):
    """A JSON body that parses but is no object: a 422, like any value of the wrong type."""


class ObjectBodyParser(Parser):
    """Every JSON body of this API is an object (or null, as good as none where a body may
    be left out). Anything else (an array, a number) is refused, not read as an object with
    every field left out (which would, say, trigger a job with no parameters)."""

    def parse_body(self, request: HttpRequest) -> dict | None:
        data = super().parse_body(request)
        if data is not None and not isinstance(data, dict):
            kind = _JSON_KINDS.get(type(data), "a number")
            raise NotAnObjectError(f"the body must be a JSON object, not {kind}")
        return data


api = NinjaAPI(
    title="Scheduled jobs API",
    version="1",
    description=(
        "Run catalog jobs, follow their runs and manage schedules. Authenticate with "
        "`Authorization: Bearer <token>` (an API token made in the admin); the token's user's "
        'permissions decide what it may do. Errors are `{"error": {"code", "message", '
        '"fields"}}`.'
    ),
    auth=TokenAuth(),
    parser=ObjectBodyParser(),
    urls_namespace="api",
)
api.add_router("", jobs.router)
api.add_router("", runs.router)
api.add_router("", schedules.router)
api.add_router("", uploads.router)
api.add_decorator(refuse_unstorable)


def _validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    return error_response(
        422, "invalid_request", "The request is invalid.", field_errors_of_pydantic(exc.errors)
    )


def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = error_response(
        401,
        "not_authenticated",
        "Send a valid API token: Authorization: Bearer <token> (made in the admin).",
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


def _throttled(request: HttpRequest, exc: Throttled) -> HttpResponse:
    return error_response(429, "rate_limited", "Too many requests; try again later.")


def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    # django-ninja's own 400 is a body it could not read (why, it says only in DEBUG).
    reason = exc.__cause__
    if isinstance(reason, NotAnObjectError):
        return error_response(
            422, "invalid_request", "The request is invalid.", {"request": [str(reason)]}
        )
    if exc.status_code == 400 and reason is not None:
        return error_response(400, "malformed_request", f"The request body is not JSON ({reason}).")
    return error_response(exc.status_code, "http_error", str(exc))


def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error_response(404, "not_found", "Not found.")


def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return error_response(413, "request_too_large", str(exc) or "The request body is too large.")


api.add_exception_handler(ApiError, from_api_error)
api.add_exception_handler(ValidationError, _validation)
api.add_exception_handler(AuthenticationError, _unauthenticated)
api.add_exception_handler(Throttled, _throttled)
api.add_exception_handler(HttpError, _http_error)
api.add_exception_handler(Http404, _not_found)
api.add_exception_handler(RequestDataTooBig, _too_big)
