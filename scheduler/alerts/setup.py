"""Connecting alerting to the rest, once, from the scheduler app's ``ready()``: the run events
(alerts and completion callbacks), the configuration cache, the alert and callback tasks, the
worker's watchdog thread and beat's turn at the watchdog (beat's loop signal is handed in:
alerting imports nothing from beat)."""

from __future__ import annotations

from celery.signals import worker_ready, worker_shutdown
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal

from scheduler.alerts import effective as config
from scheduler.alerts import hooks, tasks, watchdog_runner  # noqa: F401  (tasks: registered)
from scheduler.alerts.callbacks import hooks as callback_hooks
from scheduler.alerts.callbacks import tasks as callback_tasks  # noqa: F401  (registered)
from scheduler.alerts.models import AlertChannel, AlertPolicy, Incident
from scheduler.runs import events as run_events


def connect(beat_loop_turned: Signal) -> None:
    # Whether a run's schedule has an open incident (that a success would resolve) is asked
    # at every end; read with the start, in the statement the worker makes anyway.
    run_events.read_at_start(
        hooks.INCIDENT_OPEN,
        f"EXISTS (SELECT 1 FROM {Incident._meta.db_table} i"
        " WHERE i.schedule_id = {run}.schedule_id AND i.resolved_at IS NULL)",
    )
    # Whether a run has a completion callback (its request's URL, its schedule's channel),
    # asked at every end: read with the start too.
    for name, sql in callback_hooks.fact_sql().items():
        run_events.read_at_start(name, sql)
    run_events.run_started.connect(hooks.on_run_started, dispatch_uid="alerts.started")
    run_events.run_finished.connect(hooks.on_run_finished, dispatch_uid="alerts.finished")
    run_events.run_finished.connect(
        callback_hooks.on_run_finished, dispatch_uid="alerts.callbacks.finished"
    )
    run_events.runs_not_started.connect(
        hooks.on_runs_not_started, dispatch_uid="alerts.not_started"
    )
    for model in (AlertChannel, AlertPolicy):
        post_save.connect(config.clear, sender=model, dispatch_uid=f"alerts.clear.{model}")
        post_delete.connect(config.clear, sender=model, dispatch_uid=f"alerts.del.{model}")
    m2m_changed.connect(
        config.clear, sender=AlertPolicy.channels.through, dispatch_uid="alerts.clear.m2m"
    )
    worker_ready.connect(watchdog_runner.start_in_worker, dispatch_uid="alerts.watchdog")
    worker_shutdown.connect(watchdog_runner.stop_in_worker, dispatch_uid="alerts.watchdog.stop")
    beat_loop_turned.connect(watchdog_runner.offer_in_beat, dispatch_uid="alerts.watchdog.beat")
