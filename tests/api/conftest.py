"""Fixtures of the API tests: a user of each group with a token, and a client that sends it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from scheduler.web.models import ApiToken

GROUPS = {
    "editor": "Schedule editors",
    "operator": "Schedule operators",
    "viewer": "Schedule viewers",
}


@dataclass
class Caller:
    """Requests with one user's token."""

    client: Client
    token: str
    user: User

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        for name, value in (headers or {}).items():
            out["HTTP_" + name.upper().replace("-", "_")] = value
        return out

    def get(self, path: str, headers: dict[str, str] | None = None, **query: Any):
        return self.client.get(path, query, **self._headers(headers))

    def post(self, path: str, body: Any = None, headers: dict[str, str] | None = None):
        data = json.dumps(body if body is not None else {})
        return self.client.post(
            path, data, content_type="application/json", **self._headers(headers)
        )

    def patch(self, path: str, body: Any, headers: dict[str, str] | None = None):
        return self.client.patch(
            path, json.dumps(body), content_type="application/json", **self._headers(headers)
        )


def caller_for(role: str, name: str | None = None, **user: Any) -> Caller:
    person = User.objects.create_user(name or role, password="x", **user)
    if role in GROUPS:
        person.groups.add(Group.objects.get(name=GROUPS[role]))
    _row, token = ApiToken.issue(person, f"{role} token")
    return Caller(Client(), token, person)


@pytest.fixture
def operator(db) -> Caller:
    return caller_for("operator")


@pytest.fixture
def editor(db) -> Caller:
    return caller_for("editor")


@pytest.fixture
def viewer(db) -> Caller:
    return caller_for("viewer")


@pytest.fixture
def admin_caller(db) -> Caller:
    return caller_for("admin", is_superuser=True, is_staff=True)


def error_of(response) -> dict[str, Any]:
    """The error body, checked to have the one shape every refusal has."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return body["error"]
