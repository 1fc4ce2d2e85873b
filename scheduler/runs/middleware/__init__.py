"""The run history on the worker, as catalog-task middleware (``jobs_catalog.middleware``),
one concern each, in the order ``settings.JOBS_TASK_MIDDLEWARE`` gives them:

- ``context.LogContext``: the run's ids on every log line written while it runs;
- ``metrics.RunMetrics``: each attempt's end counted and timed (Prometheus);
- ``secrets.Redaction``: the run's secret values, masked in what it logs and what is kept;
- ``claim.Claim``: which attempt this delivery runs, if any, recorded as started;
- ``outcome.Outcome``: the attempt's end, its retry, the buffered occurrence released, and
  the run events;
- ``progress.ProgressControl``: the job's progress and cancellation, kept with the attempt;
- ``logs.CaptureLogs``: the job's log lines, kept with the attempt.

They share one :class:`~scheduler.runs.middleware.state.RunState` per run. Plain
django-celery-beat tasks, which have no middleware, are recorded from Celery's signals
(``scheduler.runs.plain_tasks``) with the same pieces.
"""
