"""A run control for the job tests: it keeps every progress report and says the run is
cancelled once a condition holds; and a fixture that lifts the context's throttles, so each
report is kept and each look at cancellation asks the control."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobs_catalog import context
from jobs_catalog.context import Progress


class Control:
    def __init__(self, cancel_when: Callable[[Control], bool] | None = None):
        self.reports: list[Progress] = []
        self.cancel_when = cancel_when
        self.asked = 0

    def report(self, progress: Progress) -> None:
        self.reports.append(progress)

    def is_cancelled(self) -> bool:
        self.asked += 1
        return self.cancel_when is not None and self.cancel_when(self)


@pytest.fixture
def unthrottled(monkeypatch) -> None:
    monkeypatch.setattr(context, "PROGRESS_WRITES_PER_SECOND", 1e9)
    monkeypatch.setattr(context, "CANCEL_CHECK_EVERY", 0.0)
