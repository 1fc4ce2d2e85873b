"""The probes: /healthz answers without the database, /readyz checks the database, the
migrations and the broker, and neither says anything secret."""

from __future__ import annotations

import json

import pytest
from celery import current_app
from django.db import connection
from django.test import Client

from scheduler.web import health


@pytest.fixture
def client() -> Client:
    return Client()


def _json(response) -> dict:
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return json.loads(response.content)


def test_healthz_answers_with_no_query_and_any_host(client):
    # No django_db mark: a query would raise.
    response = client.get("/healthz", HTTP_HOST="10.1.2.3:8000")  # a pod IP: not allowed
    assert response.status_code == 200
    assert _json(response) == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_migrations_and_broker_are(client):
    response = client.get("/readyz/", HTTP_HOST="10.1.2.3")
    body = _json(response)
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "migrations", "broker"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_readyz_is_unavailable_while_a_migration_is_not_applied(client, monkeypatch):
    monkeypatch.setattr(health, "_migrated", False)
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'scheduler' AND name = ("
            "SELECT MAX(name) FROM django_migrations WHERE app = 'scheduler')"
        )
    response = client.get("/readyz")
    body = _json(response)
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["migrations"] == {
        "ok": False,
        "error": "RuntimeError",
        "ms": body["checks"]["migrations"]["ms"],
    }
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


@pytest.mark.django_db
def test_readyz_is_unavailable_when_the_broker_is_down_and_names_no_url(client, monkeypatch):
    secret_url = "redis://:hunter2@127.0.0.1:1/0"  # nothing listens on port 1
    monkeypatch.setattr(current_app.conf, "broker_url", secret_url)
    monkeypatch.setattr(current_app.conf, "broker_write_url", secret_url)
    monkeypatch.setattr(health, "BROKER_TIMEOUT", 1.0)
    response = client.get("/readyz")
    body = _json(response)
    assert response.status_code == 503
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert "hunter2" not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


def test_other_methods_and_paths_go_on_to_the_site(client):
    assert client.post("/healthz").status_code == 404
    assert client.get("/healthzz").status_code == 404
