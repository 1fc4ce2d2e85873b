"""The catalog: every discovered job by name, and the problems met while discovering."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from jobs_catalog.definition import Job
from jobs_catalog.errors import UnknownJobError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginProblem:
    """A plugin that could not be loaded, or a job that was refused."""

    source: str
    message: str
    detail: str = ""
    module: str = ""
    #: "import" (the plugin failed to load), "duplicate" (a name claimed twice) or
    #: "limit" (a job asks for more time than the platform allows).
    kind: str = "import"
    #: The job refused, for the kinds that concern one job ("limit").
    job: str = ""

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class Registry:
    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        #: Jobs found in code but not loaded because of this process's settings (a time
        #: limit above its ceiling): still described in the mirror, but not runnable here.
        self.refused: dict[str, tuple[Job, PluginProblem]] = {}
        self.problems: list[PluginProblem] = []
        self.discovered = False

    def register(self, job: Job) -> bool:
        """Add ``job``. A second job claiming a taken name is refused and reported, naming
        both; the first one keeps the name (discovery order is built-ins, apps, packages)."""
        existing = self._jobs.get(job.name)
        if existing is not None and not _same_definition(existing, job):
            self.report(
                PluginProblem(
                    source=job.source or job.module,
                    module=job.module,
                    kind="duplicate",
                    message=(
                        f"job name {job.name!r} is claimed twice: by {existing.origin} and by "
                        f"{job.origin}; the second is ignored until one of them is renamed"
                    ),
                )
            )
            return False
        self._jobs[job.name] = job
        return True

    def report(self, problem: PluginProblem) -> None:
        self.problems.append(problem)
        logger.error("job catalog: %s%s", problem, f"\n{problem.detail}" if problem.detail else "")

    def refuse(self, job: Job, problem: PluginProblem) -> None:
        """Take ``job`` out of the runnable catalog for a reason of this process's own."""
        self._jobs.pop(job.name, None)
        self.refused[job.name] = (job, problem)
        self.report(problem)

    def described(self) -> list[Job]:
        """Every job whose code this process found: the loaded ones and the refused ones."""
        jobs = {**{name: job for name, (job, _) in self.refused.items()}, **self._jobs}
        return sorted(jobs.values(), key=lambda job: job.name)

    def discard_module(self, module: str) -> list[str]:
        """Drop the jobs a module registered before it failed to import."""
        dropped = [name for name, job in self._jobs.items() if job.module == module]
        for name in dropped:
            del self._jobs[name]
        return dropped

    def unregister(self, name: str) -> None:
        self._jobs.pop(name, None)

    def get(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            raise UnknownJobError(name, self._jobs) from None

    def find(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def broken_modules(self) -> dict[str, PluginProblem]:
        return {p.module: p for p in self.problems if p.module}

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[Job]:
        return iter(sorted(self._jobs.values(), key=lambda job: job.name))

    def __len__(self) -> int:
        return len(self._jobs)


def _same_definition(a: Job, b: Job) -> bool:
    # The same function seen twice (a module imported under two names, or re-imported).
    return (a.module, a.func.__qualname__) == (b.module, b.func.__qualname__)


#: The process-wide catalog, filled by discovery when Django starts.
registry = Registry()
