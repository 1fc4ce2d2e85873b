"""Errors a job author or an admin can meet. Each message names the job and, where it
applies, the parameter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class JobError(Exception):
    """Base class of every catalog error."""


class JobDefinitionError(JobError):
    """A job is declared wrongly (bad name, unsupported signature, bad limits)."""


class UnknownJobError(JobError, LookupError):
    def __init__(self, name: str, known: Iterable[str] = ()):
        self.name = name
        known = sorted(known)
        self.known = known
        hint = f"; known jobs: {', '.join(known)}" if known else "; the catalog is empty"
        super().__init__(f"unknown job {name!r}{hint}")

    def __reduce__(self):  # picklable, so it crosses the worker's process boundary intact
        return (type(self), (self.name, self.known))


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ParameterError(JobError, ValueError):
    """Parameters that fail a job's declared schema. Never carries the offending values,
    so a secret typed into the wrong field cannot leak through an error message."""

    def __init__(self, job: str, errors: list[FieldError]):
        self.job = job
        self.errors = errors
        details = "; ".join(str(e) for e in errors)
        super().__init__(f"job {job!r}: invalid parameters: {details}")

    def __reduce__(self):  # picklable, so it crosses the worker's process boundary intact
        return (type(self), (self.job, self.errors))

    def by_field(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for error in self.errors:
            out.setdefault(error.field, []).append(error.message)
        return out


class RetryableError(JobError):
    """Raise from a job to ask for another attempt (a transient condition)."""


class JobCancelled(JobError):  # noqa: N818 - the run's end, not a fault
    """Raised by a job that stops because its run was cancelled (``ctx.stop_if_cancelled()``);
    the run stays cancelled, and is not retried."""
