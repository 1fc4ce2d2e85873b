"""Reads the BeatChange journal (written by triggers) to learn which tasks changed.

On PostgreSQL, journal ids are not in commit order: a transaction that took id 10 may commit
after one that took id 11. So rows are read by transaction id from the oldest transaction
still open at the previous read (the snapshot's xmin); anything older was committed and seen
then. Rows may be read twice; recomputing an entry is idempotent. The triggers also NOTIFY,
and beat waits on LISTEN, so an edit wakes it at once.

On SQLite a single writer commits in id order, so the last id seen is a sound cursor; beat
polls the journal (cheaply, by primary key) while it waits.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduler.beat.models import BeatChange

logger = logging.getLogger(__name__)

CHANNEL = "scheduler_beat_changes"
#: How often SQLite waits look at the journal: the admin's "effective within 1 s" promise.
SQLITE_POLL = 0.25
#: Journal rows older than this are deleted (a beat that was away longer reconciles fully).
RETENTION = timedelta(hours=1)

SCHEDULE_FIELDS = {
    "crontab": "crontab_id",
    "interval": "interval_id",
    "clocked": "clocked_id",
    "solar": "solar_id",
}


class ChangeFeed:
    def __init__(self) -> None:
        self.postgres = connection.vendor == "postgresql"
        self._last_id = 0
        self._xmin: int | None = None
        self._seen: dict[int, int] = {}  # journal id -> xid, for rows read since xmin
        self._listener = None

    def start(self) -> None:
        """Take the cursor now: changes from here on will be read. Call before a full
        reconcile, so nothing that changes during it is lost."""
        if self.postgres:
            self._xmin = self._snapshot_xmin()
            # What is visible now is covered by the full reconcile that follows start();
            # only rows committed from here on are news.
            visible = BeatChange.objects.filter(xid__gte=self._xmin).values_list("id", "xid")
            self._seen = dict(visible)
            self._listen()
        else:
            self._last_id = (
                BeatChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
            )

    def poll(self) -> set[int]:
        """Ids of the periodic tasks changed since the last poll."""
        if self.postgres:
            rows = self._poll_postgres()
        else:
            rows = list(
                BeatChange.objects.filter(id__gt=self._last_id)
                .order_by("id")
                .values_list("id", "source", "row_id")
            )
            if rows:
                self._last_id = rows[-1][0]
        return _task_ids([(source, row_id) for _, source, row_id in rows])

    def _poll_postgres(self) -> list[tuple[int, str, int]]:
        xmin = self._snapshot_xmin()
        rows = list(
            BeatChange.objects.filter(xid__gte=self._xmin).values_list(
                "id", "source", "row_id", "xid"
            )
        )
        new = [(i, s, r) for i, s, r, _ in rows if i not in self._seen]
        self._seen = {i: x for i, _, _, x in rows if x >= xmin}
        self._xmin = xmin
        return new

    def _snapshot_xmin(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_snapshot_xmin(txid_current_snapshot())")
            return cursor.fetchone()[0]

    # --- waiting -----------------------------------------------------------------------
    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, waking early when a change arrives."""
        if timeout <= 0:
            return
        if self._listener is not None:
            try:
                for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                    pass
                return
            except Exception:  # the listening connection broke: reopen, fall back to sleep
                logger.warning("beat: lost the LISTEN connection; reconnecting", exc_info=True)
                self._close_listener()
                self._listen()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, SQLITE_POLL))
            if not self.postgres and BeatChange.objects.filter(id__gt=self._last_id).exists():
                return

    def _listen(self) -> None:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        try:
            self._listener = psycopg.connect(**params, autocommit=True)
            self._listener.execute(f"LISTEN {CHANNEL}")
        except Exception:
            logger.warning("beat: cannot LISTEN for changes; polling instead", exc_info=True)
            self._listener = None

    def _close_listener(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            finally:
                self._listener = None

    def close(self) -> None:
        self._close_listener()

    def prune(self) -> int:
        # Wall-clock time: the triggers stamp rows with the database's clock.
        return BeatChange.objects.filter(changed_at__lt=timezone.now() - RETENTION).delete()[0]


def _task_ids(changes: list[tuple[str, int]]) -> set[int]:
    task_ids = {row_id for source, row_id in changes if source == "task"}
    for source, field in SCHEDULE_FIELDS.items():
        ids = {row_id for s, row_id in changes if s == source}
        if ids:
            task_ids.update(
                PeriodicTask.objects.filter(**{f"{field}__in": ids}).values_list("pk", flat=True)
            )
    return task_ids
