"""Beat: the scheduler class, the change feed, the entries and their next fire times, and the
claim of due occurrences. ``scheduler.beat:DatabaseScheduler`` is the dotted path
``CELERY_BEAT_SCHEDULER`` names."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: the scheduler class needs Django's models, and beat's other modules are imported
    # by code that must not load them (settings checks, the app registry's own import).
    if name == "DatabaseScheduler":
        from scheduler.beat.scheduler import DatabaseScheduler

        return DatabaseScheduler
    raise AttributeError(name)
