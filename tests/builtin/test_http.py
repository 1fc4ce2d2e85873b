from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from jobs_catalog import JobContext, RetryableError
from jobs_catalog.builtin.http import HttpCheckError
from jobs_catalog.errors import ParameterError
from jobs_catalog.params import MASK
from jobs_catalog.registry import registry
from tests.builtin.conftest import Server, assert_field_error

NAME = "builtin.http_request"
TOKEN = "tok-9f8e7d6c5b4a"


@pytest.fixture
def job():
    return registry.get(NAME)


def run(job, **params):
    return job.call(params, JobContext(job=NAME))


def test_ok_returns_a_small_json_result(job, http_server: Server):
    result = run(job, url=f"{http_server.url}/ok")

    assert result["status"] == 200
    assert result["method"] == "GET"
    assert result["url"] == f"{http_server.url}/ok"
    assert result["bytes"] == len(b"hello from the test server")
    assert result["body_excerpt"] == "hello from the test server"
    assert result["body_complete"] is True
    assert 0 <= result["elapsed_ms"] < 5000
    assert "final_url" not in result
    json.dumps(result)
    assert http_server.seen[0].headers["User-Agent"] == "jobs-catalog/builtin.http_request"


def test_method_headers_and_body_are_sent(job, http_server: Server):
    result = run(
        job,
        url=f"{http_server.url}/echo",
        method="POST",
        headers={"X-Trace": "abc"},
        body="payload ✓",
    )

    seen = http_server.seen[0]
    assert (seen.method, seen.headers["X-Trace"], seen.body) == (
        "POST",
        "abc",
        "payload ✓".encode(),
    )
    assert result["body_excerpt"] == "POST auth=None body=payload ✓"


def test_head_request(job, http_server: Server):
    result = run(job, url=f"{http_server.url}/ok", method="HEAD")

    assert (result["status"], result["bytes"]) == (200, 0)
    assert http_server.seen[0].method == "HEAD"


def test_unexpected_4xx_fails_without_retry(job, http_server: Server):
    with pytest.raises(HttpCheckError) as caught:
        run(job, url=f"{http_server.url}/status/404")

    message = str(caught.value)
    assert "HTTP 404" in message and f"{http_server.url}/status/404" in message
    assert "expected 2xx" in message
    assert not job.retry.is_retryable(caught.value)


def test_expected_status_accepts_codes_and_classes(job, http_server: Server):
    assert run(job, url=f"{http_server.url}/status/404", expected_status=[404])["status"] == 404
    assert run(job, url=f"{http_server.url}/status/410", expected_status=["4xx"])["status"] == 410
    with pytest.raises(HttpCheckError):
        run(job, url=f"{http_server.url}/status/200", expected_status=["404", "3xx"])


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_are_retryable(job, http_server: Server, status: int):
    with pytest.raises(RetryableError) as caught:
        run(job, url=f"{http_server.url}/status/{status}")

    assert f"HTTP {status}" in str(caught.value)
    assert job.retry.is_retryable(caught.value)
    assert job.retry.max_attempts == 3


def test_slow_response_times_out(job, http_server: Server):
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        run(job, url=f"{http_server.url}/slow", timeout=0.2)

    assert time.monotonic() - started < 2
    assert "timed out" in str(caught.value) and "/slow" in str(caught.value)
    assert job.retry.is_retryable(caught.value)


def test_slow_body_times_out(job, http_server: Server):
    with pytest.raises(TimeoutError):
        run(job, url=f"{http_server.url}/slow-body", timeout=0.2)


def test_closed_port_is_a_connection_error(job):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port once the socket is closed.
    with pytest.raises(ConnectionError) as caught:
        run(job, url=f"http://127.0.0.1:{port}/", timeout=2)

    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "cannot connect" in str(caught.value)
    assert job.retry.is_retryable(caught.value)


def test_redirects_followed_or_not(job, http_server: Server):
    followed = run(job, url=f"{http_server.url}/redirect")
    assert followed["status"] == 200
    assert followed["final_url"].endswith("/ok")

    with pytest.raises(HttpCheckError, match="HTTP 302"):
        run(job, url=f"{http_server.url}/redirect", follow_redirects=False)
    kept = run(
        job, url=f"{http_server.url}/redirect", follow_redirects=False, expected_status=["3xx"]
    )
    assert kept["status"] == 302


def test_contains(job, http_server: Server):
    assert run(job, url=f"{http_server.url}/ok", contains="test server")["status"] == 200
    with pytest.raises(HttpCheckError, match="does not contain"):
        run(job, url=f"{http_server.url}/ok", contains="goodbye")


def test_large_body_is_read_up_to_a_bound(job, http_server: Server, monkeypatch):
    monkeypatch.setattr("jobs_catalog.builtin.http.MAX_BODY_BYTES", 1000)
    result = run(job, url=f"{http_server.url}/big/300000")

    assert result["body_complete"] is False
    assert 1000 <= result["bytes"] < 300000
    assert len(result["body_excerpt"]) == 500


def test_bearer_token_is_sent_but_never_shown(job, http_server: Server, caplog):
    caplog.set_level(logging.DEBUG)
    result = run(
        job, url=f"{http_server.url}/echo", headers={"Authorization": "x"}, bearer_token=TOKEN
    )

    assert http_server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert f"auth=Bearer {MASK}" in result["body_excerpt"]
    assert TOKEN not in json.dumps(result)
    with pytest.raises(HttpCheckError) as caught:
        run(job, url=f"{http_server.url}/echo/403", bearer_token=TOKEN)
    assert "HTTP 403" in str(caught.value) and TOKEN not in str(caught.value)
    assert TOKEN not in caplog.text
    assert job.mask({"url": "u", "bearer_token": TOKEN})["bearer_token"] == MASK


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "url", "required parameter is missing"),
        ({"url": "http://h", "timeout": "soon"}, "timeout", "valid number"),
        ({"url": "http://h", "timeout": 0}, "timeout", "greater than or equal to 0.1"),
        ({"url": "http://h", "timeout": 301}, "timeout", "less than or equal to 300"),
        ({"url": "http://h", "retries": 3}, "retries", "unexpected parameter"),
        ({"url": "http://h", "method": "FETCH"}, "method", "'GET'"),
        ({"url": "ftp://h/file"}, "url", "http:// or https://"),
        ({"url": "http://"}, "url", "must name a host"),
        ({"url": "http://user:pw@h/"}, "url", "credentials"),
        ({"url": "http://h", "expected_status": ["2x"]}, "expected_status", "'2xx'"),
        ({"url": "http://h", "expected_status": []}, "expected_status", "at least 1"),
        ({"url": "http://h", "headers": {"X-A": "1\r\nX-B: 2"}}, "headers", "line breaks"),
        ({"url": "http://h", "headers": {"Bad Name": "1"}}, "headers", "HTTP tokens"),
        ({"url": "http://h", "follow_redirects": "perhaps"}, "follow_redirects", "boolean"),
    ],
)
def test_bad_parameters_are_refused(job, params, field, message):
    with pytest.raises(ParameterError) as caught:
        job.validate(params)

    assert_field_error(caught.value, NAME, field)
    assert message in " ".join(caught.value.by_field()[field])


def test_bad_token_is_refused_without_echoing_it(job):
    with pytest.raises(ParameterError) as caught:
        job.validate({"url": "http://h", "bearer_token": "abc\ndef-secret"})

    assert_field_error(caught.value, NAME, "bearer_token")
    assert "def-secret" not in str(caught.value)


def test_validated_parameters_are_json_ready(job):
    params = job.validate({"url": " https://example.org/health ", "expected_status": [204, "3XX"]})

    assert params["url"] == "https://example.org/health"
    assert params["expected_status"] == ["204", "3xx"]
    assert params["method"] == "GET" and params["headers"] == {} and params["timeout"] == 10.0
    assert job.validate(params) == params
