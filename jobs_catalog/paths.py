"""The file jobs' allowlist: a path is usable only if, symlinks resolved, it lies inside one of
``settings.JOBS_FILE_ROOTS``.

Settings are read on every call, never at import time, so a changed allowlist (or
``override_settings`` in a test) takes effect at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from jobs_catalog.errors import JobError


class PathNotAllowedError(JobError, ValueError):
    """A path outside the allowlist. A ``ValueError`` so that pydantic validators report it
    as a field error. Messages name the offending path as given, never the allowlist: an
    editor who may schedule file jobs need not learn every directory they may touch."""


def allowed_roots() -> list[Path]:
    """The allowlisted directories, symlinks resolved."""
    return [Path(os.path.realpath(root)) for root in settings.JOBS_FILE_ROOTS if str(root).strip()]


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or path.is_relative_to(root)


def resolve_allowed(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``path`` resolved (every symlink followed), and the allowlisted root it lies in.

    Raises :class:`PathNotAllowedError` for a relative path, a path outside every root, or an
    empty allowlist.
    """
    raw = os.fspath(path)
    if not raw.strip():
        raise PathNotAllowedError("a path is required")
    if not os.path.isabs(raw):
        raise PathNotAllowedError("must be an absolute path")
    roots = allowed_roots()
    if not roots:
        raise PathNotAllowedError(
            "no directory is allowed: set JOBS_FILE_ROOTS to the directories file jobs may touch"
        )
    resolved = Path(os.path.realpath(raw))
    for root in roots:
        if is_inside(resolved, root):
            return resolved, root
    via_symlink = resolved != Path(os.path.normpath(raw))
    raise PathNotAllowedError(
        f"{raw} is outside the directories file jobs may touch (JOBS_FILE_ROOTS)"
        + (" once symlinks are resolved" if via_symlink else "")
    )


def allowed_directory(value: str) -> str:
    """Pydantic ``AfterValidator``: refuse a directory outside the allowlist. Keeps the value
    as typed; the jobs resolve it again when they run."""
    resolve_allowed(value)
    return value


def require_directory(path: str | os.PathLike[str]) -> Path:
    """At run time: ``path`` resolved, inside the allowlist, and an existing directory."""
    resolved, _root = resolve_allowed(path)
    if not resolved.is_dir():
        raise NotADirectoryError(f"{os.fspath(path)} is not an existing directory")
    return resolved


def existing_directory(value: str) -> str:
    """Pydantic ``AfterValidator``: an allowlisted directory that exists now. For jobs that
    write into it, so a typo is refused before anything is queued."""
    resolved, _root = resolve_allowed(value)
    if not resolved.is_dir():
        raise PathNotAllowedError(f"{value} is not an existing directory")
    return value


def existing_file(value: str) -> str:
    """Pydantic ``AfterValidator``: an allowlisted regular file that exists now."""
    resolved, _root = resolve_allowed(value)
    if not resolved.is_file():
        raise PathNotAllowedError(f"{value} is not an existing file")
    return value


def require_file(path: str | os.PathLike[str]) -> Path:
    """At run time: ``path`` resolved, inside the allowlist, and an existing regular file."""
    resolved, _root = resolve_allowed(path)
    if not resolved.is_file():
        raise FileNotFoundError(f"{os.fspath(path)} is not an existing file")
    return resolved
