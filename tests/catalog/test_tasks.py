"""Each catalog job is a Celery task under its name, with its queue and limits."""

import pytest
from celery import current_app

from jobs_catalog.definition import Job
from jobs_catalog.errors import ParameterError
from jobs_catalog.registry import registry
from jobs_catalog.retry import RetryPolicy
from jobs_catalog.tasks import CatalogTask, bind_task


def add(a: int, b: int = 1) -> int:
    return a + b


@pytest.fixture
def bound():
    job = Job(
        name="tests.add",
        func=add,
        title="Add",
        queue="maths",
        soft_time_limit=5,
        time_limit=9,
        retry=RetryPolicy(max_attempts=4),
    )
    bind_task(job)
    return current_app.tasks["tests.add"], job


def test_builtins_are_registered_as_celery_tasks_on_the_shared_base():
    assert len(registry) >= 4
    for job in registry:
        task = current_app.tasks[job.name]
        assert isinstance(task, CatalogTask) and task.job is job
        assert task.acks_late and task.reject_on_worker_lost


def test_bound_task_carries_queue_and_time_limits(bound):
    task, _ = bound
    assert task.name == "tests.add" and task.queue == "maths"
    assert (task.soft_time_limit, task.time_limit) == (5, 9)


def test_platform_default_limits_apply_when_a_job_declares_none(settings):
    settings.JOBS_DEFAULT_SOFT_TIME_LIMIT, settings.JOBS_DEFAULT_TIME_LIMIT = 30, 40
    task = bind_task(Job(name="tests.plain", func=add, title="Plain"))
    assert (task.soft_time_limit, task.time_limit) == (30, 40)


@pytest.mark.django_db  # each run is recorded in the history
def test_task_validates_and_runs_the_job_in_process(bound):
    task, _ = bound
    # apply() runs the task body in this process: a unit test of the base task only.
    assert task.apply(kwargs={"a": 2, "b": "3"}).get() == 5
    with pytest.raises(ParameterError, match="b: Input should be a valid integer"):
        task.apply(kwargs={"a": 2, "b": "x"}).get()


def test_context_reports_attempt_and_policy(bound):
    task, _ = bound
    task.push_request(retries=2)
    try:
        context = task.make_context()
    finally:
        task.pop_request()
    assert (context.attempt, context.max_attempts, context.job) == (3, 4, "tests.add")


def test_router_sends_a_job_to_its_declared_queue(bound, monkeypatch):
    task, job = bound
    monkeypatch.setattr(registry, "_jobs", {**registry._jobs, job.name: job})
    route = current_app.amqp.router.route({}, "tests.add", (), {}, task)
    assert route["queue"].name == "maths"
    # An explicit queue (a schedule's override) wins.
    route = current_app.amqp.router.route({"queue": "urgent"}, "tests.add", (), {}, task)
    assert route["queue"].name == "urgent"
    plain = current_app.amqp.router.route({}, "unknown.task", (), {}, None)
    assert plain["queue"].name == current_app.conf.task_default_queue
