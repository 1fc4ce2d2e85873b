"""The scheduler app: schedules, the beat scheduler, runs, alerts and their admin, in rooms.

A room imports only the rooms below it (``tests/test_layout.py`` holds the code to it):

- ``policies/``: the rules as pure functions: cron and DST, jitter, misfire, overlap.
  Imports no Django and nothing else of the scheduler.
- ``schedules/``: the Schedule model and its rules, its cron entry (django-celery-beat sync),
  services (pause, resume, duplicate), timing (jitter, due time, catch-up window), secrets at
  rest, the platform's own schedules. Imports policies.
- ``runs/``: JobRun and worker heartbeats, the outbox (the one path that publishes a run),
  the worker's recording of runs, retries, reaper, retention, log capture, redaction, run
  events, actions (retry, cancel, run now, backfill), a running job's progress and the
  stopping of a cancelled run's job. Imports schedules, policies.
- ``beat/``: the beat scheduler class, its change feed, entries and fire times, the claim of
  due occurrences, and its loop's signal. Imports runs (outbox, messages, models, events,
  publisher, reaper), schedules, policies.
- ``alerts/``: all of alerting: models, admin, forms, rules, incidents, watchdog, channels;
  completion callbacks (``alerts/callbacks/``), sent by the same delivery machinery.
  Imports runs only through run events, models and redaction; schedules, policies.
- ``web/``: the admin (schedules, run history), forms, views, the probes (``/healthz``,
  ``/readyz``), the metrics' exposition and the overview (``site``, ``overview``, ``charts``);
  later the API. Imports any room.
- Shared bottom modules, under every room and importing none: ``background`` (work on beat's
  loop in a thread of its own), ``clock``, ``failpoints``, ``db``, ``formatting``,
  ``internal_tasks`` (the platform's own task names), ``metrics`` (the Prometheus metrics
  each room counts), ``secret_field``.
- Above the rooms: ``apps`` (connects the rooms in ``ready()``), ``admin`` and ``models``
  (gather the rooms' admins and models), ``checks``, ``jobs`` (the platform's own catalog
  jobs), ``log_redaction`` (kept for logging configurations), ``management/``. Only ``apps``
  and ``admin`` import web.
"""
