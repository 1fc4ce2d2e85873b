"""Celery's "Task ... succeeded in ...: <return value>" line stays one short line, through the
logging the settings configure: however long the job's report, and whatever secret it holds."""

from __future__ import annotations

import logging
import logging.config

import pytest
from celery.app import trace

from scheduler.runs import log_redaction
from scheduler.runs.redaction import Redactor
from scheduler.runs.success_log import MAX_LOGGED_RESULT, BoundTaskSuccess

SECRET = "s3cr3t-value-xyz"


def log_success(return_value: str) -> None:
    """What Celery's tracer logs when a task succeeded (its own function and format)."""
    trace.info(
        trace.LOG_SUCCESS,
        {
            "id": "c0ffee",
            "name": "builtin.file_cleanup",
            "return_value": return_value,
            "runtime": 0.25,
            "args": "()",
            "kwargs": repr({"directory": "/srv/" + "x" * 1000}),
        },
    )


def success_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "celery.app.trace"]


def test_the_settings_put_the_filter_on_celerys_tracer_once(settings):
    tracer = logging.getLogger("celery.app.trace")
    assert any(isinstance(f, BoundTaskSuccess) for f in tracer.filters)
    logging.config.dictConfig(settings.LOGGING)  # configured again: still one
    assert sum(isinstance(f, BoundTaskSuccess) for f in tracer.filters) == 1


def test_a_long_result_is_one_short_line(caplog):
    report = repr({"removed": [f"dir/file-{i}.log" for i in range(500)]})
    assert len(report) > 1000
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        log_success(report + "\nsecond line\r\nthird")
    [record] = success_records(caplog)
    line = record.getMessage()
    assert line.startswith("Task builtin.file_cleanup[c0ffee] succeeded in 0.25s: {'removed':")
    assert "\n" not in line and "\r" not in line
    value = line.split(": ", 1)[1]
    escaped = report + "\\nsecond line\\r\\nthird"  # the line breaks written as \n, \r
    assert value == f"{escaped[:MAX_LOGGED_RESULT]}… ({len(escaped)} characters)"
    assert len(line) < MAX_LOGGED_RESULT + 100
    # A JSON log line writes the extra data out: bounded too.
    assert len(record.data["return_value"]) < MAX_LOGGED_RESULT + 30
    assert len(record.data["kwargs"]) < MAX_LOGGED_RESULT + 30


def test_a_short_result_is_left_alone(caplog):
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        log_success("{'count': 3}")
    [record] = success_records(caplog)
    assert record.getMessage().endswith("succeeded in 0.25s: {'count': 3}")


@pytest.fixture
def running_with_secret():
    log_redaction.use(Redactor([SECRET]))
    yield
    log_redaction.use(None)


def test_a_secret_across_the_cut_is_masked_not_halved(caplog, running_with_secret):
    # The secret starts a few characters before the cut: cut first, then masked, half of it
    # would be left in the line.
    value = "x" * (MAX_LOGGED_RESULT - 5) + SECRET + "y" * 50
    with caplog.at_level(logging.INFO, logger="celery.app.trace"):
        log_success(value)
    line = success_records(caplog)[0].getMessage()
    assert SECRET[:5] not in line
    assert line.split(": ", 1)[1].startswith("x" * (MAX_LOGGED_RESULT - 5) + "*****")
