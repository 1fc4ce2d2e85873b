"""Progress and cancellation against a real ``celery worker``: a job's progress is stored
while it runs and its last report is kept; a cancellable job's cancelled run stops cleanly
between steps (not killed, not retried, its end announced once); one that ignores the cancel
is terminated after the grace."""

from __future__ import annotations

import pytest

from scheduler.runs import events as run_events
from scheduler.runs.actions import cancel_run
from scheduler.runs.models import JobRun
from tests.support.processes import celery_worker, wait_for
from tests.support.runs import lines, run_now

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
Status = JobRun.Status
TOKEN = "tok-Pr0gress-secret-41"


def row(run: JobRun) -> JobRun:
    return JobRun.objects.get(pk=run.pk)


def done(run: JobRun) -> float:
    progress = row(run).progress or {}
    return progress.get("done", -1)


@pytest.fixture
def announced_here():
    """The run events this test process sends (the cancel's)."""
    seen: list[tuple[int, str]] = []

    def on_finished(sender, run_id, status, **kwargs):
        seen.append((run_id, status))

    run_events.run_finished.connect(on_finished, dispatch_uid="test.progress.finished")
    yield seen
    run_events.run_finished.disconnect(dispatch_uid="test.progress.finished")


def test_a_running_job_reports_its_progress_and_its_last_report_is_kept(platform, client_app):
    gate = platform.tmp_path / "gate"
    params = {"steps": 10, "gate": str(gate), "gate_at": 5, "token": TOKEN}
    with celery_worker(platform.tmp_path, platform.env, queues=platform.queue):
        run = run_now(client_app, platform.queue, "tests.progress_steps", params)
        # The job holds at step 5 (reporting) until the gate opens: a mid-run value.
        wait_for(lambda: done(run) == 5, 30, "the progress to reach step 5 of 10")
        mid = row(run)
        assert mid.status == Status.RUNNING
        assert mid.progress["total"] == 10
        assert mid.progress["message"].startswith("step 5 with ********")
        assert TOKEN not in str(mid.progress)
        gate.touch()
        wait_for(lambda: row(run).status == Status.SUCCEEDED, 30, "the job to finish")
    # Steps 6 to 10 come within a few milliseconds: the throttle holds them back, and the
    # last one is written when the run ends.
    final = row(run)
    assert final.progress["done"] == 10 and final.progress["message"] == "step 10 with ********"
    assert final.progress["at"] and TOKEN not in str(final.progress)


def test_a_cancelled_cancellable_job_stops_between_steps(platform, client_app, announced_here):
    events = platform.tmp_path / "events"
    marker = platform.tmp_path / "next.txt"
    env = {**platform.env, "RUN_EVENTS_FILE": str(events)}
    with celery_worker(platform.tmp_path, env, queues=platform.queue) as worker:
        run = run_now(client_app, platform.queue, "tests.cancellable_steps", {"pause": 0.1})
        wait_for(lambda: done(run) >= 3, 30, "the job to report a few steps")
        result = cancel_run(run.pk, None, app=client_app)
        assert result.warning == "" and result.run.status == Status.CANCELLED
        wait_for(lambda: "The job stopped at" in row(run).note, 30, "the job to stop by itself")
        # The same pool process runs the next job: the job was not killed.
        run_now(client_app, platform.queue, "tests.touch_file", {"path": str(marker)})
        wait_for(marker.exists, 30, "the next job to run")
        worker.wait_for_output(f"[{run.task_id}] cancelled: the job stops by itself", timeout=5)
        output = worker.output()
    stopped = row(run)
    assert stopped.status == Status.CANCELLED and "(was running)" in stopped.note
    [(_, pid, _)] = [line.split() for line in lines(marker)]
    assert int(pid) == stopped.worker_pid
    assert f"Terminating {run.task_id}" not in output
    assert "raised expected: JobCancelled" in output  # one line, no traceback
    # Not retried, though its policy retries anything.
    assert not JobRun.objects.filter(occurrence=run).exists()
    # It stopped between steps: its last progress and its log lines are kept.
    steps = [line for line in stopped.logs.splitlines() if " step " in f" {line}"]
    assert len(steps) >= 4
    last = int(stopped.progress["done"])
    assert f"step {last} " in steps[-1] and stopped.progress["message"] == f"step {last}"
    # Its end was announced once, by the cancel; the worker announced the next job only.
    assert announced_here == [(run.pk, Status.CANCELLED)]
    assert f"finished {run.pk} " not in (events.read_text() if events.exists() else "")


def test_a_cancellable_job_that_ignores_the_cancel_is_terminated_after_the_grace(
    platform, client_app
):
    events = platform.tmp_path / "events"
    marker = platform.tmp_path / "next.txt"
    env = {**platform.env, "JOBS_CANCEL_GRACE": "1.5", "RUN_EVENTS_FILE": str(events)}
    params = {"pause": 0.1, "ignore_cancel": True}
    with celery_worker(platform.tmp_path, env, queues=platform.queue) as worker:
        run = run_now(client_app, platform.queue, "tests.cancellable_steps", params)
        wait_for(lambda: done(run) >= 2, 30, "the job to report a few steps")
        cancel_run(run.pk, None, app=client_app)
        worker.wait_for_output(
            f"Terminating {run.task_id}: it did not stop within 1.5s of its cancel", timeout=15
        )
        run_now(client_app, platform.queue, "tests.touch_file", {"path": str(marker)})
        wait_for(marker.exists, 30, "the next job to run")
    killed = row(run)
    assert killed.status == Status.CANCELLED and "The job was terminated at" in killed.note
    [(_, pid, _)] = [line.split() for line in lines(marker)]
    assert int(pid) != killed.worker_pid  # its process was replaced
    assert not JobRun.objects.filter(occurrence=run).exists()
    # Its process ended through SystemExit: its lines and last report are kept all the same,
    # and its end is not announced again (as a failure).
    assert "step 1 " in killed.logs and killed.progress["done"] >= 2
    assert f"finished {run.pk} " not in (events.read_text() if events.exists() else "")
