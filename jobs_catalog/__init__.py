"""The job catalog: the plugin API for job authors.

from jobs_catalog import job, Param, JobContext, RetryPolicy
"""

from jobs_catalog.context import JobContext, Progress
from jobs_catalog.decorators import job
from jobs_catalog.errors import (
    JobCancelled,
    JobDefinitionError,
    JobError,
    ParameterError,
    RetryableError,
    UnknownJobError,
)
from jobs_catalog.params import Param
from jobs_catalog.retry import NO_RETRY, RetryPolicy

__all__ = [
    "NO_RETRY",
    "JobCancelled",
    "JobContext",
    "JobDefinitionError",
    "JobError",
    "Param",
    "ParameterError",
    "Progress",
    "RetryPolicy",
    "RetryableError",
    "UnknownJobError",
    "job",
]
