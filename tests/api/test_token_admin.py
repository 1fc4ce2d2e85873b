"""API tokens in the admin: made and shown once, kept hashed, listed by prefix, revoked; each
person sees their own."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from scheduler.web.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db
ADD = "/admin/scheduler/apitoken/add/"
LIST = "/admin/scheduler/apitoken/"


def staff(name: str, group: str | None = "Schedule operators", **fields) -> Client:
    user = User.objects.create_user(name, password="x", is_staff=True, **fields)
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def made_token(client: Client, name: str = "shop backend", **form) -> str:
    response = client.post(ADD, {"name": name, **form})
    assert response.status_code == 200, response.content[:500]
    match = re.search(rb'id="api-token"[^>]*value="(jobs_[^"]+)"', response.content)
    assert match, response.content.decode()[:2000]
    return match.group(1).decode()


def test_a_token_is_shown_once_and_only_its_hash_is_kept():
    client = staff("ann")
    token = made_token(client)
    row = ApiToken.objects.get(name="shop backend")
    assert row.user.username == "ann" and row.key_hash == hash_token(token)
    listing = client.get(LIST).content.decode()
    assert row.prefix in listing and token not in listing
    assert token not in client.get(f"{LIST}{row.pk}/change/").content.decode()
    # The token works at once, as its user.
    api = Client().get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.status_code == 200


def test_a_revoked_token_stops_working():
    client = staff("ann")
    token = made_token(client)
    row = ApiToken.objects.get()
    response = client.post(LIST, {"action": "revoke", "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert ApiToken.objects.get().revoked_at is not None
    assert Client().get("/api/jobs", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert "revoked" in client.get(LIST).content.decode()


def test_people_see_and_revoke_only_their_own_tokens():
    ann, bob = staff("ann"), staff("bob", group="Schedule viewers")
    made_token(ann, "ann's")
    made_token(bob, "bob's")
    assert "ann&#x27;s" not in bob.get(LIST).content.decode()
    anns = ApiToken.objects.get(name="ann's")
    assert bob.get(f"{LIST}{anns.pk}/change/").status_code in (302, 403, 404)
    bob.post(LIST, {"action": "revoke", "_selected_action": [anns.pk]})
    assert ApiToken.objects.get(name="ann's").revoked_at is None


def test_a_non_superuser_cannot_make_a_token_for_someone_else():
    other = User.objects.create_user("root-ish", password="x")
    client = staff("ann")
    made_token(client, "sneaky", user=other.pk)
    assert ApiToken.objects.get(name="sneaky").user.username == "ann"


def test_a_superuser_makes_a_token_for_a_service_user():
    service = User.objects.create_user("shop-service", password="x")
    client = staff("root", group=None, is_superuser=True)
    made_token(client, "for the shop", user=service.pk)
    assert ApiToken.objects.get(name="for the shop").user == service


def test_someone_without_token_permissions_cannot_make_one():
    client = staff("nobody", group=None)
    assert client.get(ADD).status_code == 403
    assert not ApiToken.objects.exists()
