"""``builtin.extract_archive``: a zip or tar.gz file into an allowlisted directory, safely.

An archive is untrusted input. Every entry's path must stay inside the destination (no
absolute path, no ``..``); links, devices and other special entries are refused; and the
caps on the total size, the number of files and the compression ratio are enforced on the
bytes actually written, as they are written, never on what the archive's headers announce.

Entries are extracted into a hidden directory under the destination, locked while in use;
only when the whole archive passed are its files moved into place. A refusal, a damaged
archive or a cancellation removes that directory: nothing half-extracted is left behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import re
import secrets
import shutil
import stat
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

from pydantic import AfterValidator

from jobs_catalog import NO_RETRY, JobContext, JobError, Param, job
from jobs_catalog.builtin.files import FileJobError
from jobs_catalog.builtin.staging import (
    directories,
    move,
    open_directory,
    size_text,
    walk,
)
from jobs_catalog.paths import existing_directory, existing_file, require_directory, require_file

MIB = 1024 * 1024
#: Bytes decompressed (and written) at a time.
CHUNK = 1024 * 1024
#: The ratio cap applies once this much was written: a small file of repeated text is
#: legitimately very compressible and harmless.
RATIO_FLOOR = MIB
#: The most bytes a tar extended header (a long name, pax attributes) may have.
MAX_TAR_HEADER = 64 * 1024
#: A zip's central directory may take this many bytes per entry allowed (names, extras).
ZIP_DIRECTORY_BYTES_PER_ENTRY = 1024
#: A working directory a crashed run left behind is removed after this many seconds.
STALE_SECONDS = 60
SHOWN = 20
_WORK_DIR = re.compile(r"^\.extract-[0-9a-f]{16}\.partial$")
_TAR_HEADER_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


class ArchiveRefused(JobError):  # noqa: N818 - a verdict on the archive
    """The archive breaks a rule (a path leading out, a link, a cap): nothing is extracted."""


# --- the job ----------------------------------------------------------------------------
@job(
    "builtin.extract_archive",
    title="Extract an archive",
    retry=NO_RETRY,
    soft_time_limit=3600,
    time_limit=3660,
    cancellable=True,
)
def extract_archive(
    ctx: JobContext,
    *,
    archive: Annotated[
        str,
        AfterValidator(existing_file),
        Param(help="absolute path of a .zip or .tar.gz file inside JOBS_FILE_ROOTS"),
    ],
    destination: Annotated[
        str,
        AfterValidator(existing_directory),
        Param(help="absolute path of an existing directory inside JOBS_FILE_ROOTS"),
    ],
    max_total_mb: Annotated[
        float,
        Param(
            gt=0,
            le=1024 * 1024,
            allow_inf_nan=False,
            help="most bytes the extracted files may take together, MiB",
        ),
    ] = 1024,
    max_files: Annotated[
        int, Param(ge=1, le=1_000_000, help="most entries (files and directories)")
    ] = 10_000,
    max_ratio: Annotated[
        float,
        Param(
            ge=1,
            le=100_000,
            allow_inf_nan=False,
            help="most bytes extracted per byte of archive (a zip bomb's is in the thousands)",
        ),
    ] = 100,
    overwrite: Annotated[
        bool,
        Param(help="replace files already in the destination (else the job refuses them)"),
    ] = False,
) -> dict[str, Any]:
    """Extract a zip or tar.gz archive (the format is read from its first bytes).

    Refused, with nothing extracted: an entry whose path is absolute or contains '..',
    symlinks, hard links, devices and other special entries, encrypted zip entries, an
    entry twice, more entries than max_files, more bytes than max_total_mb, or more than
    max_ratio bytes written per byte of archive (counted as the data is written, once 1 MiB
    is). Files already in the destination are not replaced unless overwrite is set.
    """
    source = require_file(archive)
    target = require_directory(destination)
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(
            open(os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb")
        )
        dest_fd = open_directory(target)
        stack.callback(os.close, dest_fd)
        caps = _Caps(
            total=int(max_total_mb * MIB),
            files=max_files,
            ratio=max_ratio,
            archive_size=os.fstat(raw.fileno()).st_size,
        )
        _remove_stale_work_dirs(dest_fd)
        with _work_dir(dest_fd) as work_fd:
            try:
                kind, counts = _extract(ctx, raw, work_fd, caps)
                _move_in(work_fd, dest_fd, overwrite, target)
            except ArchiveRefused as exc:
                raise FileJobError(f"{source}: refused, nothing extracted: {exc}") from None
            except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
                raise FileJobError(
                    f"{source}: damaged or not a valid archive, nothing extracted: "
                    f"{exc or type(exc).__name__}"
                ) from None
    ctx.logger.info(
        "extracted %s into %s: %d files, %d directories, %s",
        source,
        target,
        counts.files,
        counts.directories,
        size_text(counts.bytes),
    )
    return {
        "archive": str(source),
        "destination": str(target),
        "format": kind,
        "files": counts.files,
        "directories": counts.directories,
        "bytes": counts.bytes,
        "top_level": sorted(counts.top_level)[:SHOWN],
    }


# --- caps ---------------------------------------------------------------------------------
@dataclass
class _Caps:
    total: int
    files: int
    ratio: float
    archive_size: int


@dataclass
class _Counts:
    files: int = 0
    directories: int = 0
    bytes: int = 0
    #: The first few names at the top of the archive.
    top_level: set[str] = field(default_factory=set)


class _Tally:
    """The caps, checked on every entry and every chunk written; progress and cancellation
    checked there too."""

    def __init__(self, ctx: JobContext, caps: _Caps, total_entries: int | None):
        self.ctx = ctx
        self.caps = caps
        self.total_entries = total_entries
        self.counts = _Counts()
        self.entries = 0

    def entry(self, parts: tuple[str, ...]) -> None:
        self.ctx.stop_if_cancelled()
        self.entries += 1
        if self.entries > self.caps.files:
            raise ArchiveRefused(f"more than max_files ({self.caps.files}) entries")
        if len(self.counts.top_level) < SHOWN:
            self.counts.top_level.add(parts[0])

    def entry_done(self, name: str) -> None:
        self.ctx.progress(self.entries, self.total_entries, name)

    def wrote(self, count: int) -> None:
        self.counts.bytes += count
        written = self.counts.bytes
        if written > self.caps.total:
            raise ArchiveRefused(
                f"its files take more than max_total_mb ({size_text(self.caps.total)})"
            )
        if written > RATIO_FLOOR and written > self.caps.ratio * self.caps.archive_size:
            raise ArchiveRefused(
                f"it expands more than max_ratio ({self.caps.ratio:g}) times: "
                f"{size_text(written)} written so far from {size_text(self.caps.archive_size)}"
            )
        self.ctx.stop_if_cancelled()


# --- entry paths ----------------------------------------------------------------------------
def entry_parts(name: str) -> tuple[str, ...]:
    """The path components of an archive entry, refusing one that would land outside the
    destination. Backslashes count as separators (archives made on Windows use them, and a
    '..\\' must not slip through). ``()`` for the top itself ('./')."""
    path = name.replace("\\", "/")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ArchiveRefused(f"entry {name!r} has an absolute path")
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    if ".." in parts:
        raise ArchiveRefused(f"entry {name!r} leads outside the destination ('..')")
    if any("\0" in part for part in parts):
        raise ArchiveRefused(f"entry {name!r} has a NUL character in its name")
    return parts


# --- extraction ---------------------------------------------------------------------------
def _extract(ctx: JobContext, raw: IO[bytes], work_fd: int, caps: _Caps) -> tuple[str, _Counts]:
    magic = raw.read(4)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return "tar.gz", _extract_tar(ctx, raw, work_fd, caps)
    if magic in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip", _extract_zip(ctx, raw, work_fd, caps)
    raise ArchiveRefused("it is neither a zip nor a tar.gz archive")


def _extract_zip(ctx: JobContext, raw: IO[bytes], work_fd: int, caps: _Caps) -> _Counts:
    _check_zip_directory(raw, caps)
    with zipfile.ZipFile(raw) as archive:
        members = archive.infolist()
        if len(members) > caps.files:
            raise ArchiveRefused(f"more than max_files ({caps.files}) entries")
        tally = _Tally(ctx, caps, len(members))
        for member in members:
            parts = entry_parts(member.filename)
            if not parts:
                continue
            tally.entry(parts)
            kind = _zip_kind(member)
            if kind == "dir":
                _make_dir(work_fd, parts, member.filename)
                tally.counts.directories += 1
            else:
                if member.flag_bits & 0x1:
                    raise ArchiveRefused(f"entry {member.filename!r} is encrypted")
                mode = member.external_attr >> 16 if member.create_system == 3 else 0o644
                mtime = _zip_mtime(member)
                try:
                    data = archive.open(member)
                except NotImplementedError as exc:
                    raise ArchiveRefused(f"entry {member.filename!r}: {exc}") from None
                with data:
                    _write_file(work_fd, parts, member.filename, data, mode, mtime, tally)
                tally.counts.files += 1
            tally.entry_done(member.filename)
        return tally.counts


def _zip_mtime(member: zipfile.ZipInfo) -> float:
    try:
        return time.mktime((*member.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return time.time()


def _check_zip_directory(raw: IO[bytes], caps: _Caps) -> None:
    """Refuse a zip whose listing alone is too big, before it is read into memory."""
    record = zipfile._EndRecData(raw)  # the end record: entry count and listing size
    raw.seek(0)
    if record is None:
        raise zipfile.BadZipFile("no end of central directory record")
    entries, listing = record[zipfile._ECD_ENTRIES_TOTAL], record[zipfile._ECD_SIZE]
    if entries > caps.files:
        raise ArchiveRefused(f"more than max_files ({caps.files}) entries")
    if listing > caps.files * ZIP_DIRECTORY_BYTES_PER_ENTRY + 64 * 1024:
        raise ArchiveRefused(f"its listing ({size_text(listing)}) is too large for max_files")


def _zip_kind(member: zipfile.ZipInfo) -> str:
    mode = member.external_attr >> 16 if member.create_system == 3 else 0
    name = member.filename
    if stat.S_ISLNK(mode):
        raise ArchiveRefused(f"entry {name!r} is a symlink")
    if member.is_dir() or stat.S_ISDIR(mode):
        return "dir"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # many tools leave the type out
        raise ArchiveRefused(f"entry {name!r} is a device or special file")
    return "file"


class _CheckedTarInfo(tarfile.TarInfo):
    """Refuses an oversized extended header before tarfile reads it into memory, and GNU
    sparse members (their maps grow without bound)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _TAR_HEADER_TYPES and self.size > MAX_TAR_HEADER:
            raise ArchiveRefused(
                f"an extended header of {size_text(self.size)} (at most "
                f"{size_text(MAX_TAR_HEADER)})"
            )
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveRefused(f"entry {self.name!r} is a sparse file")
        return super()._proc_member(tarfile_)


class _Decompressed:
    """The decompressed stream, counted: the ratio cap holds for headers and padding too."""

    def __init__(self, stream: IO[bytes], caps: _Caps):
        self.stream = stream
        self.caps = caps
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size if 0 < size <= CHUNK else CHUNK)
        self.count += len(data)
        if self.count > RATIO_FLOOR and self.count > self.caps.ratio * self.caps.archive_size:
            raise ArchiveRefused(
                f"it expands more than max_ratio ({self.caps.ratio:g}) times: "
                f"{size_text(self.count)} decompressed from {size_text(self.caps.archive_size)}"
            )
        return data


def _extract_tar(ctx: JobContext, raw: IO[bytes], work_fd: int, caps: _Caps) -> _Counts:
    tally = _Tally(ctx, caps, None)
    with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
        stream = _Decompressed(unzipped, caps)
        with tarfile.open(
            fileobj=stream,  # type: ignore[arg-type]
            mode="r|",
            tarinfo=_CheckedTarInfo,
            errorlevel=2,
        ) as archive:
            while (member := archive.next()) is not None:
                archive.members.clear()  # tarfile keeps every member; nothing here needs them
                parts = entry_parts(member.name)
                if not parts:
                    continue
                tally.entry(parts)
                if member.isdir():
                    _make_dir(work_fd, parts, member.name)
                    tally.counts.directories += 1
                elif member.issym() or member.islnk():
                    kind = "symlink" if member.issym() else "hard link"
                    raise ArchiveRefused(f"entry {member.name!r} is a {kind}")
                elif member.isreg():
                    data = archive.extractfile(member)
                    assert data is not None
                    with data:
                        _write_file(
                            work_fd, parts, member.name, data, member.mode, member.mtime, tally
                        )
                    tally.counts.files += 1
                else:
                    raise ArchiveRefused(f"entry {member.name!r} is a device or special file")
                tally.entry_done(member.name)
    return tally.counts


def _make_dir(work_fd: int, parts: tuple[str, ...], name: str) -> None:
    try:
        with directories(work_fd, parts, create=True):
            pass
    except (NotADirectoryError, FileExistsError):
        raise ArchiveRefused(f"entry {name!r} clashes with a file of the archive") from None


def _write_file(
    work_fd: int,
    parts: tuple[str, ...],
    name: str,
    data: IO[bytes],
    mode: int,
    mtime: float,
    tally: _Tally,
) -> None:
    try:
        with directories(work_fd, parts[:-1], create=True) as parent_fd:
            fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o755 if mode & 0o111 else 0o644,
                dir_fd=parent_fd,
            )
    except FileExistsError:
        raise ArchiveRefused(f"entry {name!r} appears twice, or clashes with a directory") from None
    except NotADirectoryError:
        raise ArchiveRefused(f"entry {name!r} clashes with a file of the archive") from None
    try:
        while chunk := data.read(CHUNK):
            tally.wrote(len(chunk))
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        with contextlib.suppress(OSError, OverflowError, ValueError):
            os.utime(fd, (mtime, mtime))
    finally:
        os.close(fd)


# --- the working directory, and moving into place -----------------------------------------
@contextlib.contextmanager
def _work_dir(dest_fd: int) -> Iterator[int]:
    """A fresh hidden directory under the destination, locked while this run uses it and
    removed afterwards, whatever happens."""
    name = f".extract-{secrets.token_hex(8)}.partial"
    os.mkdir(name, 0o700, dir_fd=dest_fd)
    fd = open_directory(name, dir_fd=dest_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield fd
    finally:
        try:
            shutil.rmtree(name, dir_fd=dest_fd)
        finally:
            os.close(fd)


def _remove_stale_work_dirs(dest_fd: int) -> None:
    """Remove the working directories of runs that died: unlocked, and untouched for a while
    (a run locks its own right after making it)."""
    for name in os.listdir(dest_fd):
        if not _WORK_DIR.match(name):
            continue
        try:
            fd = open_directory(name, dir_fd=dest_fd)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # in use
        try:
            if time.time() - os.fstat(fd).st_mtime > STALE_SECONDS:
                shutil.rmtree(name, dir_fd=dest_fd)
        finally:
            os.close(fd)


def _move_in(work_fd: int, dest_fd: int, overwrite: bool, target: Path) -> None:
    """Move the extracted tree into the destination, after checking that no file there would
    be replaced (unless ``overwrite``) and no directory meets a file."""
    conflicts = []
    for entry in walk(work_fd):
        problem = _conflict(dest_fd, entry.parts, entry.kind, overwrite)
        if problem:
            conflicts.append(f"{entry.relative!r} {problem}")
    if conflicts:
        shown = "; ".join(conflicts[:10])
        more = f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else ""
        raise ArchiveRefused(f"it would clash with what is in {target}: {shown}{more}")
    for entry in walk(work_fd):
        with directories(dest_fd, entry.parts[:-1], create=True) as parent_fd:
            if entry.kind == "dir":
                with contextlib.suppress(FileExistsError):
                    os.mkdir(entry.name, 0o755, dir_fd=parent_fd)
            else:
                move(entry.parent_fd, entry.name, parent_fd, entry.name, replace=overwrite)


def _conflict(dest_fd: int, parts: tuple[str, ...], kind: str, overwrite: bool) -> str:
    """What stands in the way of putting an entry at ``parts`` in the destination, or ""."""
    try:
        with directories(dest_fd, parts[:-1], create=False) as parent_fd:
            info = os.lstat(parts[-1], dir_fd=parent_fd)
    except FileNotFoundError:
        return ""
    except (NotADirectoryError, OSError) as exc:
        return f"cannot be placed: a part of its path is not a directory ({exc.strerror})"
    if kind == "dir":
        if stat.S_ISDIR(info.st_mode):
            return ""
        return "is a directory, but a file or a symlink has that name"
    if stat.S_ISDIR(info.st_mode):
        return "is a file, but a directory has that name"
    return "" if overwrite else "already exists (set overwrite to replace it)"
