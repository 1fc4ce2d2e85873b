"""The site's icon: every admin page links it, /favicon.ico answers for pages that do not,
and both files are real images among the static files."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static

pytestmark = pytest.mark.django_db


def test_favicon_ico_redirects_to_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == static("scheduler/favicon.ico")


@pytest.mark.parametrize("url", ["/admin/login/", "/admin/"])
def test_admin_pages_link_the_icon(admin_client, client, url):
    page = (admin_client if url == "/admin/" else client).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert f'<link rel="icon" href="{static("scheduler/favicon.svg")}"' in html
    assert f'<link rel="icon" href="{static("scheduler/favicon.ico")}"' in html


def test_the_icons_are_images():
    ico = finders.find("scheduler/favicon.ico")
    svg = finders.find("scheduler/favicon.svg")
    assert ico and svg
    with open(ico, "rb") as handle:
        header = handle.read(6)
    assert header[:4] == b"\x00\x00\x01\x00" and header[4] >= 1  # an ICO, one icon or more
    with open(svg, encoding="utf-8") as handle:
        assert handle.read().startswith("<svg ")
