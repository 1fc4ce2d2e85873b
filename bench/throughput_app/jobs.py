"""The no-op catalog job (found by discovery, as an installed app's ``jobs.py``)."""

from jobs_catalog import job


@job(name="bench.noop_job", description="Does nothing: for the run-throughput benchmark.")
def noop_job(n: int = 0) -> None:
    return None
