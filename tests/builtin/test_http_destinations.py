"""The HTTP job's destination policy: what the URL shows, what the name resolves to, every
redirect, and the JOBS_HTTP_ALLOW / JOBS_HTTP_DENY settings."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import quote

import pytest

from jobs_catalog import JobContext
from jobs_catalog.builtin.http import HttpCheckError
from jobs_catalog.builtin.http_destinations import (
    DestinationRefusedError,
    parse_address,
    parse_rules,
)
from jobs_catalog.checks import http_destination_policy
from jobs_catalog.errors import ParameterError
from jobs_catalog.models import JobDefinition
from jobs_catalog.registry import registry
from tests.builtin.conftest import Server

NAME = "builtin.http_request"
TOKEN = "tok-5e4d3c2b1a"
REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def job():
    return registry.get(NAME)


@pytest.fixture
def defaults(settings):
    """The policy as shipped: nothing allowed beyond public addresses, nothing denied."""
    settings.JOBS_HTTP_ALLOW = []
    settings.JOBS_HTTP_DENY = []
    return settings


def run(job, **params):
    return job.call(params, JobContext(job=NAME))


def url_error(job, url: str) -> str:
    with pytest.raises(ParameterError) as caught:
        job.validate({"url": url})
    return " ".join(caught.value.by_field()["url"])


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """Names in ``answers`` resolve to those addresses; every other name as usual. Returns
    the list of names looked up, in order."""
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        looked_up.append(host)
        if host not in answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in answers[host]
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


# --- every spelling of an address is read as the address it stands for --------------------
@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("[fd00:ec2::254]", "fd00:ec2::254"),
        ("fe80::1%eth0", "fe80::1"),
        ("example.org", None),
        ("0x7g000001", None),
        ("08.0.0.1", None),
        ("256.0.0.1", None),
        ("1.2.3.4.5", None),
    ],
)
def test_numeric_forms_are_normalised(host, address):
    expected = ipaddress.ip_address(address) if address else None
    assert parse_address(host) == expected


# --- refused by default, with a clear message where the schedule is entered ------------------
@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata address"),
        ("http://100.100.100.200/latest/meta-data/", "cloud metadata address"),
        ("http://[::ffff:a9fe:a9fe]/", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata service"),
        ("http://METADATA.google.internal./", "cloud metadata service"),
        ("http://169.254.1.1/", "link-local address"),
        ("http://[fe80::1]/", "link-local address"),
        ("http://0.0.0.0:8000/", "unspecified address"),
        ("http://0x7f000001/", "loopback address"),
        ("http://2130706433/", "loopback address"),
        ("http://0177.0.0.1/", "loopback address"),
        ("http://127.1:5432/", "loopback address"),
        ("http://[::ffff:127.0.0.1]/", "loopback address"),
        ("http://[::1]:6379/", "loopback address"),
        ("http://10.1.2.3/", "private address"),
        ("https://192.168.0.1/", "private address"),
        ("http://[fd12::1]/", "private address"),
        ("http://100.64.0.1/", "shared (carrier-grade NAT) address"),
        ("http://192.0.2.1/", "reserved (not public) address"),
    ],
)
def test_internal_destinations_are_refused_by_default(defaults, job, url, kind):
    assert kind in url_error(job, url)


def test_public_addresses_and_names_pass_validation(defaults, job):
    for url in ("https://93.184.215.14/", "https://example.org/health", "http://[2606:4700::1]/"):
        assert job.validate({"url": url})["url"] == url


def test_the_schedule_form_shows_the_refusal_on_the_url_field(defaults, db):
    from scheduler.web.forms import schedule_form_class

    definition = JobDefinition.objects.get(name=NAME)
    form = schedule_form_class(definition, editing=False)(
        {
            "name": "metadata",
            "cron": "* * * * *",
            "timezone": "UTC",
            "param__url": "http://169.254.169.254/latest/meta-data/",
        }
    )
    assert not form.is_valid()
    assert "cloud metadata address" in " ".join(form.errors["param__url"])


# --- checked after DNS, and the checked address is the one connected to ---------------------
def test_a_name_resolving_to_loopback_is_refused_and_nothing_is_sent(
    defaults, job, http_server: Server
):
    port = http_server.url.rsplit(":", 1)[1]
    with pytest.raises(DestinationRefusedError) as caught:
        run(job, url=f"http://localhost:{port}/ok")  # localhost: 127.0.0.1 (and ::1)

    assert "localhost (" in str(caught.value) and "loopback address" in str(caught.value)
    assert not job.retry.is_retryable(caught.value)
    assert http_server.seen == []


def test_a_name_resolving_to_a_metadata_address_is_refused(defaults, job, monkeypatch):
    fake_dns(monkeypatch, {"innocent.example.test": ["169.254.169.254"]})
    with pytest.raises(DestinationRefusedError, match="cloud metadata address"):
        run(job, url="http://innocent.example.test/")


def test_one_refused_address_among_several_refuses_the_name(defaults, job, monkeypatch):
    fake_dns(monkeypatch, {"mixed.example.test": ["93.184.215.14", "10.0.0.7"]})
    with pytest.raises(DestinationRefusedError, match=r"\(10\.0\.0\.7\) is a private address"):
        run(job, url="http://mixed.example.test/")


def test_the_name_is_resolved_once_and_the_answer_pinned(job, http_server: Server, monkeypatch):
    # A second lookup would say 169.254.169.254 (DNS rebinding); there is none.
    answers = [["127.0.0.1"], ["169.254.169.254"]]
    looked_up: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if parse_address(host) is not None:  # a numeric host needs no DNS
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        looked_up.append(host)
        address = answers[min(len(looked_up), len(answers)) - 1][0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    port = http_server.url.rsplit(":", 1)[1]

    result = run(job, url=f"http://service.example.test:{port}/ok")

    assert result["status"] == 200
    assert looked_up == ["service.example.test"]
    assert http_server.seen[0].headers["Host"] == f"service.example.test:{port}"


# --- every redirect is checked ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://0x7f000002:6379/", "loopback address"),  # 127.0.0.2: not allowed
        ("http://metadata.google.internal/", "cloud metadata service"),
    ],
)
def test_a_redirect_to_a_refused_address_is_refused(job, http_server: Server, location, message):
    with pytest.raises(DestinationRefusedError, match=message) as caught:
        run(job, url=f"{http_server.url}/goto/{quote(location, safe='')}")

    assert str(caught.value).startswith(f"GET {http_server.url}/goto/")
    assert len(http_server.seen) == 1


def test_a_redirect_to_a_name_resolving_to_a_refused_address_is_refused(
    job, http_server: Server, monkeypatch
):
    fake_dns(monkeypatch, {"bounce.example.test": ["169.254.169.254"]})
    target = quote("http://bounce.example.test/", safe="")
    with pytest.raises(DestinationRefusedError, match="cloud metadata address"):
        run(job, url=f"{http_server.url}/goto/{target}")


def test_redirects_are_bounded(job, http_server: Server):
    from jobs_catalog.builtin.http import MAX_REDIRECTS

    with pytest.raises(HttpCheckError, match="HTTP 302"):
        run(job, url=f"{http_server.url}/loop")
    assert len(http_server.seen) == MAX_REDIRECTS + 1


def test_credentials_do_not_follow_a_redirect_to_another_host(
    settings, job, http_server: Server, monkeypatch
):
    fake_dns(monkeypatch, {"other.example.test": ["127.0.0.1"]})
    port = http_server.url.rsplit(":", 1)[1]
    target = quote(f"http://other.example.test:{port}/echo", safe="")

    result = run(job, url=f"{http_server.url}/goto/{target}", bearer_token=TOKEN)

    assert http_server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in http_server.seen[1].headers
    assert result["body_excerpt"] == "GET auth=None body="
    assert result["final_url"] == f"http://other.example.test:{port}/echo"


def test_a_303_turns_a_post_into_a_get_and_a_302_keeps_it(job, http_server: Server):
    result = run(job, url=f"{http_server.url}/see_other", method="POST", body="x")
    assert [s.method for s in http_server.seen] == ["POST", "GET"]
    assert result["body_excerpt"] == "GET auth=None body="

    run(job, url=f"{http_server.url}/goto/{quote('/echo', safe='')}", method="POST", body="x")
    assert [s.method for s in http_server.seen[2:]] == ["POST", "POST"]


# --- the settings ------------------------------------------------------------------------------
def test_an_allowed_range_opens_loopback_and_private_addresses(defaults, job):
    defaults.JOBS_HTTP_ALLOW = ["10.0.0.0/8", "127.0.0.1"]
    assert job.validate({"url": "http://10.1.2.3/"})
    assert job.validate({"url": "http://0x7f000001/"})  # 127.0.0.1 however spelt
    assert "loopback address" in url_error(job, "http://127.0.0.2/")


def test_a_broad_allow_does_not_open_link_local_or_metadata(defaults, job):
    defaults.JOBS_HTTP_ALLOW = ["0.0.0.0/0", "::/0", "*.internal", "169.254.0.0/16"]
    assert job.validate({"url": "http://10.1.2.3/"})
    assert job.validate({"url": "http://169.254.1.1/"})  # link-local, named by its range
    assert "cloud metadata address" in url_error(job, "http://169.254.169.254/")
    assert "cloud metadata address" in url_error(job, "http://[fd00:ec2::254]/")
    assert "cloud metadata service" in url_error(job, "http://metadata.google.internal/")


def test_metadata_named_exactly_is_allowed(defaults, job, monkeypatch):
    defaults.JOBS_HTTP_ALLOW = ["169.254.169.254", "metadata.google.internal"]
    assert job.validate({"url": "http://169.254.169.254/latest/"})
    assert job.validate({"url": "http://metadata.google.internal/"})
    assert "cloud metadata address" in url_error(job, "http://100.100.100.200/")


def test_an_allowed_host_name_opens_what_it_resolves_to(defaults, job, http_server, monkeypatch):
    defaults.JOBS_HTTP_ALLOW = ["*.corp.test"]
    fake_dns(monkeypatch, {"api.corp.test": ["127.0.0.1"], "corp.test": ["127.0.0.1"]})
    port = http_server.url.rsplit(":", 1)[1]
    assert run(job, url=f"http://api.corp.test:{port}/ok")["status"] == 200
    with pytest.raises(DestinationRefusedError, match="loopback"):
        run(job, url=f"http://corp.test:{port}/ok")  # "*." is for names below it


def test_deny_wins(defaults, job, monkeypatch):
    defaults.JOBS_HTTP_ALLOW = ["10.0.0.0/8"]
    defaults.JOBS_HTTP_DENY = ["10.9.0.0/16", "*.example.org", "93.184.215.0/24"]
    assert "JOBS_HTTP_DENY" in url_error(job, "http://10.9.1.1/")
    assert "JOBS_HTTP_DENY" in url_error(job, "https://api.example.org/")
    fake_dns(monkeypatch, {"public.example.test": ["93.184.215.14"]})
    with pytest.raises(DestinationRefusedError, match="JOBS_HTTP_DENY"):
        run(job, url="http://public.example.test/")


def test_a_malformed_entry_is_a_clear_error(defaults, job):
    defaults.JOBS_HTTP_ALLOW = ["10.0.0.0/33"]
    assert "JOBS_HTTP_ALLOW: '10.0.0.0/33' is neither a network" in url_error(
        job, "http://example.org/"
    )
    [error] = http_destination_policy()
    assert error.id == "jobs_catalog.E001"
    with pytest.raises(ValueError, match="JOBS_HTTP_DENY: 'a b'"):
        parse_rules(["a b"], "JOBS_HTTP_DENY")
