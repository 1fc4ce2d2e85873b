"""``trigger()``: the one function the API and a project's own views queue a job through. Every
refusal raises and leaves nothing behind; a run is committed before it is published, and a run
that could not be published is sent by beat's sweep from its request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery import current_app
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from jobs_catalog.errors import ParameterError, UnknownJobError
from jobs_catalog.models import JobDefinition
from jobs_catalog.secrets import is_sealed
from scheduler.beat.dispatch import Dispatcher
from scheduler.clock import SystemClock
from scheduler.runs import trigger as triggers
from scheduler.runs.messages import message_of
from scheduler.runs.models import JobRun, RunRequest
from scheduler.runs.trigger import trigger, trigger_request

pytestmark = pytest.mark.django_db
Status = JobRun.Status


class BrokenApp:
    """A Celery app whose broker is away: publishing fails."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def producer_or_acquire(self, *args, **kwargs):
        raise ConnectionError("broker down")

    @property
    def pool(self):
        raise ConnectionError("broker down")


@pytest.fixture
def operator_user(db) -> User:
    user = User.objects.create_user("op", password="x")
    user.groups.add(Group.objects.get(name="Schedule operators"))
    return user


def nothing_queued() -> bool:
    return not JobRun.objects.exists() and not RunRequest.objects.exists()


def test_a_trigger_commits_the_run_with_its_request_and_publishes_it(operator_user, tmp_path):
    run = trigger("tests.touch_file", {"path": str(tmp_path / "x")}, user=operator_user)
    assert run.pk and run.trigger == JobRun.Trigger.API and run.periodic_task_id is None
    assert run.status == Status.QUEUED and run.published_at is not None
    assert run.params == {"path": str(tmp_path / "x"), "text": "done"}
    assert run.request.requested_by == operator_user
    assert "op" in run.note
    message = message_of(run)
    assert message.task_name == "tests.touch_file"
    assert message.kwargs == {"path": str(tmp_path / "x"), "text": "done"}
    assert message.headers["attempt_id"] == run.pk


def test_secret_values_are_sealed_in_the_request_and_masked_in_the_history(operator_user):
    run = trigger(
        "builtin.http_request",
        {"url": "https://example.org/", "headers": {}, "bearer_token": "s3cret-value"},
        user=operator_user,
    )
    request = RunRequest.objects.get(run=run)
    assert is_sealed(request.kwargs["bearer_token"])
    assert "s3cret-value" not in str(request.kwargs)
    assert "s3cret-value" not in str(JobRun.objects.get(pk=run.pk).params)


@pytest.mark.parametrize(
    ("job", "params", "error"),
    [
        ("tests.nope", {}, UnknownJobError),
        ("scheduler.alerts.deliver", {}, UnknownJobError),
        ("celery.backend_cleanup", {}, UnknownJobError),
        ("tests.touch_file", {}, ParameterError),
        ("tests.touch_file", {"path": "/tmp/x", "extra": 1}, ParameterError),
        ("tests.touch_file", ["not", "a", "mapping"], ParameterError),
    ],
)
def test_bad_input_is_refused_and_queues_nothing(operator_user, job, params, error):
    with pytest.raises(error):
        trigger(job, params, user=operator_user)
    assert nothing_queued()


def test_parameter_errors_name_each_field(operator_user):
    with pytest.raises(ParameterError) as caught:
        trigger("tests.touch_file", {"text": 5, "nope": 1}, user=operator_user)
    fields = caught.value.by_field()
    assert set(fields) == {"path", "text", "nope"}


def test_a_user_without_the_permission_is_refused(db):
    viewer = User.objects.create_user("viewer", password="x")
    viewer.groups.add(Group.objects.get(name="Schedule viewers"))
    with pytest.raises(PermissionDenied):
        trigger("tests.touch_file", {"path": "/tmp/x"}, user=viewer)
    assert nothing_queued()


def test_an_unavailable_job_is_refused(operator_user):
    JobDefinition.objects.filter(name="tests.touch_file").update(
        available=False, unavailable_reason="no worker loaded it"
    )
    with pytest.raises(triggers.JobUnavailableError, match="no worker loaded it"):
        trigger("tests.touch_file", {"path": "/tmp/x"}, user=operator_user)
    assert nothing_queued()


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/x", "javascript:alert(1)", "/relative"]
)
def test_a_callback_url_must_be_http(operator_user, url, settings):
    settings.CALLBACK_SIGNING_SECRET = "whsec"
    with pytest.raises(triggers.CallbackRefusedError):
        trigger("tests.touch_file", {"path": "/tmp/x"}, user=operator_user, callback_url=url)
    assert nothing_queued()


def test_callbacks_need_a_signing_secret_and_an_allowed_destination(operator_user, settings):
    settings.CALLBACK_SIGNING_SECRET = ""
    with pytest.raises(triggers.CallbackRefusedError, match="CALLBACK_SIGNING_SECRET"):
        trigger("tests.touch_file", {"path": "/x"}, operator_user, callback_url="https://a.org/")
    settings.CALLBACK_SIGNING_SECRET = "whsec"
    with pytest.raises(triggers.CallbackRefusedError):
        trigger("tests.touch_file", {"path": "/x"}, operator_user, callback_url="http://10.1.2.3/")
    assert nothing_queued()
    run = trigger("tests.touch_file", {"path": "/x"}, operator_user, callback_url="https://a.org/")
    assert run.request.callback_url == "https://a.org/"


def test_a_callback_check_refusal_queues_nothing(operator_user):
    with pytest.raises(triggers.CallbackRefusedError, match="denied"):
        trigger_request(
            "tests.touch_file",
            {"path": "/tmp/x"},
            operator_user,
            callback_url="http://10.0.0.1/hook",
            check_callback=lambda url: "that address is denied",
        )
    assert nothing_queued()


def test_the_same_idempotency_key_and_parameters_return_the_first_run(operator_user):
    first = trigger_request(
        "tests.touch_file", {"path": "/tmp/x"}, operator_user, idempotency_key="order-17"
    )
    again = trigger_request(
        "tests.touch_file", {"path": "/tmp/x"}, operator_user, idempotency_key="order-17"
    )
    assert first.created and not again.created
    assert again.run.pk == first.run.pk
    assert JobRun.objects.count() == 1


def test_a_key_reused_with_other_parameters_is_a_conflict(operator_user):
    trigger("tests.touch_file", {"path": "/tmp/x"}, user=operator_user, idempotency_key="k")
    with pytest.raises(triggers.IdempotencyConflictError) as caught:
        trigger("tests.touch_file", {"path": "/tmp/y"}, user=operator_user, idempotency_key="k")
    assert caught.value.run.params["path"] == "/tmp/x"
    assert JobRun.objects.count() == 1


def test_keys_belong_to_their_user(operator_user):
    other = User.objects.create_user("other", password="x")
    other.groups.add(Group.objects.get(name="Schedule operators"))
    a = trigger("tests.touch_file", {"path": "/tmp/x"}, user=operator_user, idempotency_key="k")
    b = trigger("tests.touch_file", {"path": "/tmp/y"}, user=other, idempotency_key="k")
    assert a.pk != b.pk


def test_a_run_that_could_not_be_published_stays_pending_and_the_sweep_sends_it(operator_user):
    done = trigger_request(
        "tests.touch_file",
        {"path": "/tmp/x"},
        operator_user,
        app=BrokenApp(current_app),
    )
    assert done.created and "not sent yet" in done.warning
    run = JobRun.objects.get(pk=done.run.pk)
    assert run.status == Status.PENDING and run.published_at is None
    # Beat's sweep finds it (a request, no cron entry) once it is old enough, and sends it.
    JobRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    dispatcher = Dispatcher(current_app, SystemClock())
    try:
        assert dispatcher.sweep() == 1
        dispatcher.outbox.mark_published(timeout=5)
    finally:
        dispatcher.outbox.close()
    assert JobRun.objects.get(pk=run.pk).status == Status.QUEUED


def test_a_later_attempt_is_rebuilt_from_its_first_attempts_request(operator_user):
    run = trigger("tests.touch_file", {"path": "/tmp/x"}, user=operator_user)
    later = JobRun.objects.create(
        task_name=run.task_name,
        scheduled_for=run.scheduled_for,
        trigger=JobRun.Trigger.RETRY,
        attempt=2,
        occurrence=run,
    )
    message = message_of(later)
    assert message.kwargs == {"path": "/tmp/x", "text": "done"}
    assert message.headers["attempt_id"] == later.pk


def test_an_idempotency_key_over_the_limit_is_refused(operator_user):
    with pytest.raises(triggers.TriggerError, match="at most"):
        trigger(
            "tests.touch_file", {"path": "/tmp/x"}, user=operator_user, idempotency_key="k" * 201
        )
    assert nothing_queued()
