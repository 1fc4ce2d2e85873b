"""Command line for job authors: list, describe and run catalog jobs, and sync the mirror.

manage.py jobs list
manage.py jobs describe builtin.http_request
manage.py jobs run builtin.http_request --param url=https://example.org --param timeout=5
"""

from __future__ import annotations

import json
import socket
import traceback
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from jobs_catalog.context import JobContext
from jobs_catalog.definition import Job
from jobs_catalog.errors import ParameterError, UnknownJobError
from jobs_catalog.middleware import RunInfo, run_with_middleware
from jobs_catalog.registry import registry
from jobs_catalog.sync import sync_job_definitions

#: Exit codes of ``jobs run``: the job failed / the input was wrong.
EXIT_JOB_FAILED = 1
EXIT_BAD_INPUT = 2


class Command(BaseCommand):
    help = "List, describe and run catalog jobs."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = actions.add_parser("list", help="every job in the catalog")
        listing.add_argument("--json", action="store_true", help="machine-readable output")
        describe = actions.add_parser("describe", help="a job's parameters and policies")
        describe.add_argument("name")
        describe.add_argument("--json", action="store_true", help="machine-readable output")
        run = actions.add_parser("run", help="run a job here and now, in this process")
        run.add_argument("name")
        run.add_argument(
            "--param",
            "-p",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a parameter; lists and mappings as JSON (repeatable)",
        )
        run.add_argument("--params-json", metavar="JSON", help="all parameters as one JSON object")
        actions.add_parser("sync", help="mirror the catalog into the database now")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        getattr(self, f"handle_{action}")(**options)

    # --- list ---------------------------------------------------------------------------
    def handle_list(self, json: bool = False, **options: Any) -> None:
        jobs = list(registry)
        if json:
            self._print_json([_summary(j) for j in jobs])
        else:
            width = max((len(j.name) for j in jobs), default=4)
            for j in jobs:
                self.stdout.write(f"{j.name:<{width}}  {j.title}  [{j.source}]")
            if not jobs:
                self.stdout.write("The catalog is empty.")
        self._print_problems()

    # --- describe -----------------------------------------------------------------------
    def handle_describe(self, name: str, json: bool = False, **options: Any) -> None:
        job = self._get(name)
        if json:
            self._print_json(
                {**_summary(job), "parameters": [_param_dict(p) for p in job.params()]}
            )
            return
        soft, hard = job.soft_time_limit, job.time_limit
        retry = job.retry
        lines = [
            f"{job.name}: {job.title}",
            "",
            job.description or "(no description)",
            "",
            f"source:       {job.source} ({job.module})",
            f"queue:        {job.queue or '(default)'}",
            f"time limits:  soft {soft or 'default'}s, hard {hard or 'default'}s",
            f"retries:      {retry.max_attempts} attempts, backoff {retry.backoff_base}s "
            f"doubling up to {retry.backoff_cap}s{', jitter' if retry.jitter else ''}; on "
            + ", ".join(t.__name__ for t in retry.retry_on),
            "cancel:       "
            + ("stops by itself between chunks" if job.cancellable else "terminates the job"),
            "",
            "parameters:",
        ]
        params = job.params()
        if not params:
            lines.append("  (none)")
        for p in params:
            need = "required" if p.required else f"default {_shown_default(p)}"
            extra = f"; one of {', '.join(map(repr, p.choices))}" if p.choices else ""
            secret = "; secret" if p.secret else ""
            lines.append(f"  {p.name} ({p.type}; {need}{extra}{secret})")
            if p.help:
                lines.append(f"      {p.help}")
        self.stdout.write("\n".join(lines))

    # --- run ----------------------------------------------------------------------------
    def handle_run(
        self, name: str, param: list[str], params_json: str | None = None, **options: Any
    ) -> None:
        job = self._get(name)
        params = _parse_params(job, param, params_json)
        try:
            job.validate(params)
        except ParameterError as exc:
            raise CommandError(str(exc), returncode=EXIT_BAD_INPUT) from None
        # The same middleware as on a worker, so the run is recorded in the history (one
        # attempt: nobody retries a command typed at a terminal).
        run = RunInfo(
            job=job,
            params=params,
            context=JobContext(job=job.name, trigger="cli", max_attempts=1),
            hostname=socket.gethostname(),
        )
        try:
            result = self._run(run)
        except Exception as exc:
            self.stderr.write("".join(traceback.format_exception(exc)))
            raise CommandError(
                f"job {job.name!r} failed: {type(exc).__name__}: {exc}", returncode=EXIT_JOB_FAILED
            ) from None
        self._print_json(result)

    def _run(self, run: RunInfo) -> Any:
        try:
            return run_with_middleware(run)
        except DatabaseError as exc:
            if run.context.run_id is not None:
                raise  # the job's own error, or one recording its end
            # A job author trying a job on a fresh checkout still gets to run it.
            self.stderr.write(
                f"warning: this run is not recorded in the run history ({exc}); "
                "has `manage.py migrate` been run?"
            )
            return run.job.call(run.params, run.context)

    # --- sync ---------------------------------------------------------------------------
    def handle_sync(self, **options: Any) -> None:
        report = sync_job_definitions(registry)
        self.stdout.write(f"Job catalog synced: {report}.")
        self._print_problems()

    # --- helpers ------------------------------------------------------------------------
    def _get(self, name: str) -> Job:
        try:
            return registry.get(name)
        except UnknownJobError as exc:
            raise CommandError(str(exc), returncode=EXIT_BAD_INPUT) from None

    def _print_json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, default=str, sort_keys=True))

    def _print_problems(self) -> None:
        for problem in registry.problems:
            self.stderr.write(f"problem: {problem}")
            if problem.detail and self.verbosity > 1:
                self.stderr.write(problem.detail)


def _summary(job: Job) -> dict[str, Any]:
    return {
        "name": job.name,
        "title": job.title,
        "description": job.description,
        "source": job.source,
        "module": job.module,
        "queue": job.queue,
        "soft_time_limit": job.soft_time_limit,
        "time_limit": job.time_limit,
        "retry": job.retry.to_dict(),
        "cancellable": job.cancellable,
    }


def _param_dict(p: Any) -> dict[str, Any]:
    return {
        "name": p.name,
        "type": p.type,
        "required": p.required,
        "default": _shown_default(p) if p.secret else p.default,
        "choices": list(p.choices) if p.choices else None,
        "help": p.help,
        "secret": p.secret,
    }


def _shown_default(p: Any) -> str:
    return "********" if p.secret and p.default not in (None, "") else repr(p.default)


def _parse_params(job: Job, pairs: list[str], params_json: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if params_json:
        try:
            params = json.loads(params_json)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params-json is not valid JSON: {exc}", returncode=2) from None
        if not isinstance(params, dict):
            raise CommandError("--params-json must be a JSON object", returncode=2)
    fields = job.params_model.model_fields
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CommandError(f"--param {pair!r}: expected KEY=VALUE", returncode=2)
        if key in params:
            raise CommandError(f"parameter {key!r} is given twice", returncode=2)
        # A text parameter takes the value as typed; anything else may be written as JSON
        # (numbers, true/false, lists, mappings), and pydantic coerces what is left.
        if key in fields and fields[key].annotation is str:
            params[key] = raw
        else:
            try:
                params[key] = json.loads(raw)
            except json.JSONDecodeError:
                params[key] = raw
    return params
