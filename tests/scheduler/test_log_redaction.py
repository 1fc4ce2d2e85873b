"""A running job's secret values are masked in the process's log records and in the events
sent to Sentry, not only in the run history; outside a run nothing is touched."""

from __future__ import annotations

import json
import logging

import pytest
import sentry_sdk
from django.conf import settings
from django.core import checks

from config.sentry import DottedHook
from scheduler.runs import log_redaction
from scheduler.runs.redaction import Redactor

SECRET = "s3cr3t-value-xyz"


@pytest.fixture
def running_with_secret():
    log_redaction.use(Redactor([SECRET]))
    yield
    log_redaction.use(None)


def _record(message: str, *args, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("job", logging.ERROR, __file__, 1, message, args, exc_info)


def _raised(message: str) -> BaseException:
    try:
        raise ConnectionError(message)
    except ConnectionError as exc:
        return exc


def test_records_are_masked_while_a_job_runs(running_with_secret):
    record = _record("calling with %s", SECRET, exc=_raised(f"refused {SECRET}"))
    assert log_redaction.SecretFilter().filter(record) is True
    text = logging.Formatter("%(message)s").format(record)
    assert "calling with ********" in text
    assert "ConnectionError: refused ********" in text  # the traceback too
    assert SECRET not in text


def test_records_are_untouched_outside_a_run():
    log_redaction.use(None)
    record = _record("calling with %s", SECRET)
    log_redaction.SecretFilter().filter(record)
    assert record.getMessage() == f"calling with {SECRET}" and record.args == (SECRET,)


def test_a_job_with_no_secrets_changes_nothing():
    log_redaction.use(Redactor())  # a job without secret parameters
    assert log_redaction.current() is None


def sentry_client(before_send, sent: list[dict]) -> sentry_sdk.Client:
    return sentry_sdk.Client(
        dsn="http://key@127.0.0.1:9/1",
        transport=sent.append,  # sentry-sdk hands a function transport each event
        before_send=before_send,
        include_local_variables=True,
    )


@pytest.mark.parametrize("configured", [False, True], ids=["function", "SENTRY_BEFORE_SEND"])
def test_sentry_events_raised_in_a_job_are_masked(running_with_secret, configured):
    sent: list[dict] = []
    # As config.sentry sets it up: the hook the settings name, imported at the first event.
    hook = DottedHook(settings.SENTRY_BEFORE_SEND) if configured else None
    client = sentry_client(hook or log_redaction.scrub_sentry_event, sent)

    def job(account: str) -> None:  # a name sentry-sdk's own scrubber does not know
        raise ConnectionError(f"upstream refused {account}")

    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        scope.set_extra("celery-job", {"kwargs": {"account": SECRET}})
        try:
            job(SECRET)
        except ConnectionError as exc:
            sentry_sdk.capture_exception(exc)
        client.flush()
    [event] = [e for e in sent if e.get("exception")]
    text = json.dumps(event)
    assert SECRET not in text
    assert "upstream refused ********" in text  # the exception's message
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert frames[-1]["vars"]["account"] == "'********'"  # the frame's local variable


def test_a_hook_that_cannot_be_imported_drops_the_event(running_with_secret):
    sent: list[dict] = []
    client = sentry_client(DottedHook("scheduler.runs.log_redaction.no_such_hook"), sent)
    with sentry_sdk.isolation_scope() as scope:
        scope.set_client(client)
        sentry_sdk.capture_message(f"refused {SECRET}")
        client.flush()
    assert not [e for e in sent if e.get("message")]  # never sent unmasked


def test_check_names_a_before_send_that_cannot_be_imported(settings):
    def errors() -> list[str]:
        return [m.msg for m in checks.run_checks() if m.id == "scheduler.E005"]

    assert errors() == []
    settings.SENTRY_BEFORE_SEND = "scheduler.runs.log_redaction.no_such_hook"
    [message] = errors()
    assert "SENTRY_BEFORE_SEND='scheduler.runs.log_redaction.no_such_hook'" in message
