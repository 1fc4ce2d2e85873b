"""``builtin.management_command``: run one allowlisted Django management command."""

from __future__ import annotations

import io
from typing import Annotated, Any

from django.conf import settings
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from pydantic import AfterValidator

from jobs_catalog import NO_RETRY, JobContext, JobError, Param, job

#: Characters of each output stream kept in the result (the end, where summaries are).
OUTPUT_LIMIT = 10_000


class ManagementCommandError(JobError):
    """The command failed; the message is the command's own."""


def _allowed_command(value: str) -> str:
    # Read on every validation, so a changed allowlist applies to saved schedules too.
    allowed = sorted(settings.JOBS_MANAGEMENT_COMMANDS)
    if not allowed:
        raise ValueError("no command is allowed: set JOBS_MANAGEMENT_COMMANDS")
    if value not in allowed:
        raise ValueError(
            f"is not an allowed command; allowed: {', '.join(allowed)} "
            "(set by JOBS_MANAGEMENT_COMMANDS)"
        )
    if value not in get_commands():
        raise ValueError("is allowed but no installed app provides it")
    return value


@job("builtin.management_command", title="Run a management command", retry=NO_RETRY)
def management_command(
    ctx: JobContext,
    *,
    command: Annotated[
        str,
        AfterValidator(_allowed_command),
        Param(help="name of the command; only those in JOBS_MANAGEMENT_COMMANDS"),
    ],
    args: Annotated[
        list[str],
        Param(
            default_factory=list,
            help='arguments and options, as on the command line: ["--verbosity", "2"]',
        ),
    ],
) -> dict[str, Any]:
    """Run a Django management command and keep the end of its output.

    Only commands listed in the JOBS_MANAGEMENT_COMMANDS setting may run. The command's
    own error message becomes the job's failure.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    ctx.logger.info("running manage.py %s %s", command, " ".join(args))
    try:
        call_command(command, *args, stdout=stdout, stderr=stderr)
    except CommandError as exc:
        _log_output(ctx, stdout, stderr)
        raise ManagementCommandError(f"manage.py {command} failed: {exc}") from exc
    except SystemExit as exc:
        # A command calling sys.exit() must fail the job, not end the worker process.
        if exc.code not in (0, None):
            _log_output(ctx, stdout, stderr)
            raise ManagementCommandError(
                f"manage.py {command} exited with status {exc.code}"
            ) from None
    output, output_cut = _tail(stdout.getvalue())
    errors, errors_cut = _tail(stderr.getvalue())
    return {
        "command": command,
        "args": list(args),
        "output": output,
        "error_output": errors,
        "truncated": output_cut or errors_cut,
    }


def _tail(text: str) -> tuple[str, bool]:
    if len(text) <= OUTPUT_LIMIT:
        return text, False
    return text[-OUTPUT_LIMIT:], True


def _log_output(ctx: JobContext, stdout: io.StringIO, stderr: io.StringIO) -> None:
    for label, stream in (("output", stdout), ("error output", stderr)):
        text, _ = _tail(stream.getvalue())
        if text.strip():
            ctx.logger.info("%s:\n%s", label, text)
