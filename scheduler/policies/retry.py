"""Retry layering: which layer each retry setting of a run is taken from.

A run's retry policy resolves setting by setting, as Dramatiq's does: the run's own value
(message headers ``retry_max_attempts``, ``retry_backoff_base``, ``retry_backoff_cap``), else
its schedule's (its fields of the same names), else the job's declared policy, which is the
platform's default policy (``jobs_catalog.retry``) when the job declares none. A layer sets a
setting by giving it a value other than None.

Pure: no Django. The worker builds a run's policy from this (``scheduler.runs.retries``); the
claim's SQL resolves ``max_attempts`` in the order of ``LAYERS`` too
(``scheduler.runs.recording``), and one table of cases holds both to it
(``tests/scheduler/test_rules_in_sql.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Layer(StrEnum):
    RUN = "run"
    SCHEDULE = "schedule"
    JOB = "job"


#: The first layer that sets a setting gives its value.
LAYERS = (Layer.RUN, Layer.SCHEDULE, Layer.JOB)
#: The settings a layer may set, named as in the job's policy.
SETTINGS = ("max_attempts", "backoff_base", "backoff_cap")


def layer_name(setting: str) -> str:
    """The name of ``setting`` in the run and schedule layers: a message header, and a
    schedule's field."""
    return f"retry_{setting}"


#: The run layer's message headers.
RUN_HEADERS = tuple(layer_name(setting) for setting in SETTINGS)


@dataclass(frozen=True)
class Choice:
    """The value a setting takes, and the layer it comes from."""

    value: Any
    layer: Layer


def resolve(
    setting: str,
    *,
    run: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
    job: Any = None,
) -> Choice | None:
    """The value of ``setting``: from the first layer that sets it. ``run`` and ``schedule``
    map names of :func:`layer_name` to a value or None (or are None: the layer sets
    nothing); ``job`` is the job layer's value. None when no layer sets it."""
    name = layer_name(setting)
    given = {
        Layer.RUN: run.get(name) if run else None,
        Layer.SCHEDULE: schedule.get(name) if schedule else None,
        Layer.JOB: job,
    }
    for layer in LAYERS:
        if given[layer] is not None:
            return Choice(given[layer], layer)
    return None


def above_job(
    run: Mapping[str, Any] | None, schedule: Mapping[str, Any] | None
) -> dict[str, Choice]:
    """The settings the run or the schedule set, by setting: what replaces the job's own."""
    chosen: dict[str, Choice] = {}
    for setting in SETTINGS:
        choice = resolve(setting, run=run, schedule=schedule)
        if choice is not None:
            chosen[setting] = choice
    return chosen
