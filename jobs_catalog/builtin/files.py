"""File jobs: ``builtin.file_cleanup`` and ``builtin.bulk_rename``.

Both work only inside ``settings.JOBS_FILE_ROOTS`` (see :mod:`jobs_catalog.paths`): checked
when parameters are validated, and again, file by file, when the job runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from django.utils import timezone
from pydantic import AfterValidator, ValidationInfo

from jobs_catalog import NO_RETRY, JobCancelled, JobContext, JobError, Param, job
from jobs_catalog.paths import allowed_directory, is_inside, require_directory

#: Entries listed at most in a report; counts are always complete.
REPORT_LIMIT = 200
SECONDS_PER_DAY = 86400

Directory = Annotated[
    str,
    AfterValidator(allowed_directory),
    Param(help="absolute path of a directory inside JOBS_FILE_ROOTS"),
]


class FileJobError(JobError):
    """A file job could not do what it was asked; the message says what and where."""


# --- builtin.file_cleanup ------------------------------------------------------------------
def _relative_glob(value: str) -> str:
    if not value.strip():
        raise ValueError("a pattern is required, e.g. '*.log'")
    if value.startswith(("/", "\\")):
        raise ValueError("must be relative to the directory")
    parts = value.split("/")
    if ".." in parts:
        raise ValueError("must not contain '..': it must stay inside the directory")
    if any("**" in part and part != "**" for part in parts):
        raise ValueError("'**' must be a whole path component, as in '**/*.tmp'")
    return value


@dataclass(frozen=True)
class _Candidate:
    relative: str
    name: str
    parent: tuple[str, ...]
    size: int
    mtime: float


@job(
    "builtin.file_cleanup",
    title="Delete old files",
    retry=NO_RETRY,
    soft_time_limit=900,
    time_limit=960,
)
def file_cleanup(
    ctx: JobContext,
    *,
    directory: Directory,
    pattern: Annotated[
        str,
        AfterValidator(_relative_glob),
        Param(help="glob relative to the directory: '*.log', or '**/*.tmp' for every level"),
    ] = "*",
    older_than_days: Annotated[
        float,
        Param(
            ge=0,
            le=36500,
            allow_inf_nan=False,
            help="delete files last modified more than this many days ago (0.5 = 12 hours)",
        ),
    ],
    dry_run: Annotated[bool, Param(help="report what would be deleted, delete nothing")] = False,
    max_files: Annotated[
        int, Param(ge=1, help="delete at most this many (oldest first); the rest wait")
    ] = 10_000,
) -> dict[str, Any]:
    """Delete regular files matching a pattern and older than a given age.

    Symlinks are never followed nor deleted, and a file that resolves outside the directory
    is skipped; both are listed under "skipped". "removed" lists the files deleted; with
    dry_run nothing is deleted, and "would_remove" lists what would have been instead.
    """
    base = require_directory(directory)
    cutoff = time.time() - older_than_days * SECONDS_PER_DAY
    candidates, skipped = _cleanup_candidates(base, pattern, cutoff)
    limited = len(candidates) > max_files
    candidates = sorted(candidates, key=lambda c: c.mtime)[:max_files]
    if dry_run:
        removed, failed = candidates, []
    else:
        removed, failed = _delete(base, candidates, cutoff)
    ctx.logger.info(
        "%s %d files (%d bytes) under %s; %d skipped%s",
        "dry run: would remove" if dry_run else "removed",
        len(removed),
        sum(c.size for c in removed),
        base,
        len(skipped),
        f"; {len(failed)} could not be deleted" if failed else "",
    )
    if failed:
        first = failed[0]
        raise FileJobError(
            f"deleted {len(removed)} files under {base}, but {len(failed)} could not be "
            f"deleted; first: {first['path']}: {first['error']}"
        )
    return {
        "directory": str(base),
        "pattern": pattern,
        "dry_run": dry_run,
        "count": len(removed),
        "bytes": sum(c.size for c in removed),
        # A dry run's report says what it would do, not what it did.
        "would_remove" if dry_run else "removed": [c.relative for c in removed[:REPORT_LIMIT]],
        "skipped_count": len(skipped),
        "skipped": skipped[:REPORT_LIMIT],
        "limited": limited,
    }


def _cleanup_candidates(
    base: Path, pattern: str, cutoff: float
) -> tuple[list[_Candidate], list[dict[str, str]]]:
    candidates: list[_Candidate] = []
    skipped: list[dict[str, str]] = []
    seen: set[Path] = set()
    for path in base.glob(pattern):
        relative = path.relative_to(base).as_posix()
        if path.is_symlink():
            skipped.append({"path": relative, "reason": "symlink"})
            continue
        real = Path(os.path.realpath(path))
        if not is_inside(real, base):
            # A symlinked directory on the way leads out of the directory.
            skipped.append({"path": relative, "reason": "resolves outside the directory"})
            continue
        try:
            info = os.lstat(real)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(info.st_mode) or real in seen:
            continue
        if not stat.S_ISREG(info.st_mode):
            skipped.append({"path": relative, "reason": "not a regular file"})
            continue
        seen.add(real)
        if info.st_mtime < cutoff:
            parts = real.relative_to(base).parts
            candidates.append(
                _Candidate(relative, parts[-1], parts[:-1], info.st_size, info.st_mtime)
            )
    return candidates, skipped


def _delete(
    base: Path, candidates: list[_Candidate], cutoff: float
) -> tuple[list[_Candidate], list[dict[str, str]]]:
    removed: list[_Candidate] = []
    failed: list[dict[str, str]] = []
    base_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for candidate in candidates:
            try:
                if _unlink_beneath(base_fd, candidate, cutoff):
                    removed.append(candidate)
            except OSError as exc:
                failed.append({"path": candidate.relative, "error": exc.strerror or str(exc)})
    finally:
        os.close(base_fd)
    return removed, failed


def _unlink_beneath(base_fd: int, candidate: _Candidate, cutoff: float) -> bool:
    """Delete the candidate, walking down from the directory without following any symlink,
    so a directory swapped for a symlink since the listing cannot lead outside. False if
    the file is gone or is no longer an old regular file."""
    with _open_beneath(base_fd, candidate.parent) as parent_fd:
        try:
            info = os.lstat(candidate.name, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(info.st_mode) or info.st_mtime >= cutoff:
            return False
        try:
            os.unlink(candidate.name, dir_fd=parent_fd)
        except FileNotFoundError:
            return False
        return True


@contextlib.contextmanager
def _open_beneath(base_fd: int, parts: tuple[str, ...]) -> Iterator[int]:
    fds: list[int] = []
    try:
        fd = base_fd
        for part in parts:
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            fds.append(fd)
        yield fd
    finally:
        for fd in reversed(fds):
            os.close(fd)


# --- builtin.bulk_rename -------------------------------------------------------------------
#: Fields a template may use besides the regex's named groups.
TEMPLATE_FIELDS = frozenset({"stem", "suffix", "name", "index", "mtime"})


def _regex(value: str) -> str:
    if not value:
        raise ValueError("a regular expression is required")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None
    return value


def _replacement(value: str, info: ValidationInfo) -> str:
    match = info.data.get("match")
    if match is None:  # the regex failed validation and is reported on its own
        return value
    pattern = re.compile(match)
    if info.data.get("mode") == "template":
        _check_template(value, pattern)
    else:
        try:
            pattern.sub(value, "")  # parses the replacement, group references included
        except (re.error, IndexError) as exc:
            raise ValueError(f"is not a valid replacement for the regex: {exc}") from None
    return value


def _check_template(template: str, pattern: re.Pattern[str]) -> None:
    groups = set(pattern.groupindex)
    if clash := groups & TEMPLATE_FIELDS:
        raise ValueError(f"the regex's group names clash with template fields: {sorted(clash)}")
    allowed = TEMPLATE_FIELDS | groups
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as exc:
        raise ValueError(f"is not a valid template: {exc}") from None
    for field in fields:
        if field not in allowed:
            raise ValueError(
                "template fields are named, one of: "
                + ", ".join(f"{{{name}}}" for name in sorted(allowed))
            )
    try:
        _format_name(template, _sample_fields(groups))
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"is not a valid template: {exc}") from None


def _sample_fields(groups: set[str]) -> dict[str, Any]:
    sample: dict[str, Any] = dict.fromkeys(groups, "")
    sample.update(
        stem="a", suffix=".b", name="a.b", index=1, mtime=datetime(2000, 1, 1, tzinfo=UTC)
    )
    return sample


def _format_name(template: str, fields: dict[str, Any]) -> str:
    return template.format(**fields)


@dataclass(frozen=True)
class Rename:
    old: str
    new: str


@job(
    "builtin.bulk_rename",
    title="Rename files by a pattern",
    retry=NO_RETRY,
    soft_time_limit=300,
    time_limit=360,
    cancellable=True,
)
def bulk_rename(
    ctx: JobContext,
    *,
    directory: Directory,
    match: Annotated[
        str,
        AfterValidator(_regex),
        Param(help="regular expression searched for in each file name; others are left alone"),
    ],
    mode: Annotated[
        Literal["regex", "template"],
        Param(help="regex: re.sub(match, replacement, name); template: a new name from fields"),
    ] = "regex",
    replacement: Annotated[
        str,
        AfterValidator(_replacement),
        Param(
            help="regex mode: the re.sub replacement (\\1, \\g<name>); template mode: a "
            "str.format template using {stem} {suffix} {name} {index} (1-based, by name) "
            "{mtime:%Y%m%d} (in TIME_ZONE) and the regex's named groups"
        ),
    ],
    dry_run: Annotated[bool, Param(help="report the renames, rename nothing")] = False,
) -> dict[str, Any]:
    """Rename the regular files of one directory (not its subdirectories) by a pattern.

    Every new name is checked before anything is touched: two files getting one name, a new
    name already taken by a file that is not itself renamed, or a name that is empty, '.',
    '..' or contains '/' fails the job with nothing renamed. Swaps and chains (a->b, b->a)
    work. If a rename fails midway, or the run is cancelled, the ones done are undone.
    """
    base = require_directory(directory)
    plan = plan_renames(base, re.compile(match), mode, replacement)
    if not dry_run and plan:
        _apply(base, plan, ctx)
    ctx.logger.info("%s %d files in %s", "would rename" if dry_run else "renamed", len(plan), base)
    return {
        "directory": str(base),
        "mode": mode,
        "dry_run": dry_run,
        "count": len(plan),
        "renamed": [{"old": r.old, "new": r.new} for r in plan[:REPORT_LIMIT]],
    }


def plan_renames(base: Path, pattern: re.Pattern[str], mode: str, replacement: str) -> list[Rename]:
    """The renames to make, checked for collisions; raises :class:`FileJobError`."""
    entries = sorted(os.listdir(base))
    files = [name for name in entries if _is_regular_file(base / name)]
    plan: list[Rename] = []
    index = 0
    for name in files:
        found = pattern.search(name)
        if found is None:
            continue
        index += 1
        new = _new_name(base / name, found, pattern, mode, replacement, index)
        if new != name:
            plan.append(Rename(name, new))
    _check_plan(plan, set(entries), base)
    return plan


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _new_name(
    path: Path,
    found: re.Match[str],
    pattern: re.Pattern[str],
    mode: str,
    replacement: str,
    index: int,
) -> str:
    try:
        if mode == "regex":
            return pattern.sub(replacement, path.name)
        mtime = datetime.fromtimestamp(os.lstat(path).st_mtime, tz=UTC)
        fields = {
            **found.groupdict(default=""),
            "stem": path.stem,
            "suffix": path.suffix,
            "name": path.name,
            "index": index,
            "mtime": timezone.localtime(mtime),
        }
        return _format_name(replacement, fields)
    except (re.error, IndexError, ValueError, KeyError, TypeError) as exc:
        raise FileJobError(f"cannot build the new name of {path.name!r}: {exc}") from None


def _check_plan(plan: list[Rename], existing: set[str], base: Path) -> None:
    problems: list[str] = []
    leaving = {r.old for r in plan}
    claimed: dict[str, str] = {}
    for r in plan:
        if (
            r.new in ("", ".", "..")
            or "/" in r.new
            or "\0" in r.new
            or (os.altsep and os.altsep in r.new)
        ):
            problems.append(f"{r.old!r} would get the invalid name {r.new!r}")
        elif r.new in claimed:
            problems.append(f"{claimed[r.new]!r} and {r.old!r} would both become {r.new!r}")
        elif r.new in existing and r.new not in leaving:
            problems.append(f"{r.old!r} would become {r.new!r}, which already exists")
        claimed.setdefault(r.new, r.old)
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise FileJobError(f"nothing renamed in {base}: {shown}{more}")


def _apply(base: Path, plan: list[Rename], ctx: JobContext | None = None) -> None:
    """Rename in two phases (every file to a temporary name, then to its new name) so
    swaps and chains work; on any failure or a cancellation undo what was done, newest
    first. Progress counts a file as renamed once it has its new name."""
    ctx = ctx or JobContext(job="builtin.bulk_rename")
    token = secrets.token_hex(6)
    temporary = [f".bulk-rename-{token}-{i}" for i in range(len(plan))]
    steps = [(r.old, tmp) for r, tmp in zip(plan, temporary, strict=True)]
    steps += [(tmp, r.new) for r, tmp in zip(plan, temporary, strict=True)]
    done: list[tuple[str, str]] = []
    dir_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for src, dst in steps:
            ctx.stop_if_cancelled()
            _move(dir_fd, src, dst)
            done.append((src, dst))
            renamed = max(0, len(done) - len(plan))
            ctx.progress(renamed, len(plan), f"renamed {dst}" if renamed else "preparing")
    except BaseException as exc:
        stuck = _undo(dir_fd, done)
        if isinstance(exc, JobCancelled):
            raise JobCancelled(_cancel_message(base, len(done), stuck)) from exc
        if not isinstance(exc, Exception):
            raise  # a time limit or an interrupt: undone, and passed on as it is
        raise FileJobError(_failure_message(base, exc, len(done), stuck)) from exc
    finally:
        os.close(dir_fd)


def _move(dir_fd: int, src: str, dst: str) -> None:
    # os.rename would silently replace a file that appeared since the plan was checked.
    try:
        os.lstat(dst, dir_fd=dir_fd)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return
    raise FileExistsError(errno.EEXIST, "appeared since the renames were planned", dst)


def _undo(dir_fd: int, done: list[tuple[str, str]]) -> list[str]:
    stuck = []
    for src, dst in reversed(done):
        try:
            os.rename(dst, src, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            stuck.append(f"{dst!r} (was {src!r}): {exc.strerror or exc}")
    return stuck


def _cancel_message(base: Path, done: int, stuck: list[str]) -> str:
    message = f"renaming in {base} was cancelled; "
    if not stuck:
        return message + f"the {done} renames already made were undone"
    return message + "these could not be put back: " + "; ".join(stuck)


def _failure_message(base: Path, exc: Exception, done: int, stuck: list[str]) -> str:
    message = f"renaming in {base} failed ({type(exc).__name__}: {exc}); "
    if not stuck:
        return message + f"the {done} renames already made were undone"
    return message + "these could not be put back: " + "; ".join(stuck)
