"""``builtin.archive_directory``: a directory into a zip or tar.gz file, streamed.

Files are read and compressed a chunk at a time, so memory stays flat however large they
are; the archive is written under a hidden partial name and gets its name only when
complete. Symlinks are never followed: one that leads out of the directory refuses the job
before anything is written, others are left out and listed.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Annotated, Any

from pydantic import AfterValidator

from jobs_catalog import NO_RETRY, JobContext, Param, job
from jobs_catalog.builtin.files import FileJobError
from jobs_catalog.builtin.staging import (
    Entry,
    Staged,
    exists,
    file_name,
    is_partial_name,
    open_directory,
    open_regular,
    size_text,
    walk,
)
from jobs_catalog.paths import existing_directory, is_inside, require_directory

#: Archive name endings, and the format each picks.
FORMATS = {".zip": "zip", ".tar.gz": "tar.gz", ".tgz": "tar.gz"}
#: Bytes read (and compressed) at a time.
CHUNK = 1024 * 1024
COMPRESS_LEVEL = 6
#: Entries listed at most in the result (counts are complete).
SHOWN = 20
#: The oldest and newest times a zip entry can hold.
_ZIP_EARLIEST = (1980, 1, 1, 0, 0, 0)
_ZIP_LATEST = (2107, 12, 31, 23, 59, 58)


def format_of(name: str) -> str | None:
    """The archive format a file name picks by its ending, or None."""
    lower = name.lower()
    for suffix, kind in FORMATS.items():
        if lower.endswith(suffix) and len(name) > len(suffix):
            return kind
    return None


def _archive_name(value: str) -> str:
    file_name(value)
    if format_of(value) is None:
        raise ValueError("must end with .zip, .tar.gz or .tgz (the ending picks the format)")
    return value


ExistingDirectory = Annotated[
    str,
    AfterValidator(existing_directory),
    Param(help="absolute path of an existing directory inside JOBS_FILE_ROOTS"),
]


@job(
    "builtin.archive_directory",
    title="Archive a directory",
    retry=NO_RETRY,
    soft_time_limit=3600,
    time_limit=3660,
    cancellable=True,
)
def archive_directory(
    ctx: JobContext,
    *,
    directory: ExistingDirectory,
    destination: ExistingDirectory,
    name: Annotated[
        str,
        AfterValidator(_archive_name),
        Param(help="the archive's file name: ending in .zip, .tar.gz or .tgz"),
    ],
    overwrite: Annotated[
        bool, Param(help="replace an archive of that name (else the job refuses)")
    ] = False,
) -> dict[str, Any]:
    """Pack a directory and everything below it into one zip or tar.gz file.

    The archive is written as a hidden '.<name>.partial' file and renamed when complete, so
    a half-written archive never carries its name. Symlinks are not followed: a symlink
    leading outside the directory refuses the job before anything is written; the others,
    and special files (FIFOs, sockets, devices), are left out and listed under "skipped".
    Unfinished '.<name>.partial' files of other jobs are left out too.
    """
    source = require_directory(directory)
    target_dir = require_directory(destination)
    kind = format_of(name)
    with contextlib.ExitStack() as stack:
        source_fd = open_directory(source)
        stack.callback(os.close, source_fd)
        target_fd = open_directory(target_dir)
        stack.callback(os.close, target_fd)
        if not overwrite and exists(target_fd, name):
            raise FileJobError(f"{target_dir / name} already exists; set overwrite to replace it")
        survey = _survey(source_fd, source)
        with Staged(target_fd, name) as staged:
            leave_out = {_identity(staged.stat())}
            if overwrite and exists(target_fd, name):
                leave_out.add(_identity(os.stat(name, dir_fd=target_fd, follow_symlinks=False)))
            writer = _ZipWriter if kind == "zip" else _TarGzWriter
            counts = writer(staged.fd).write_tree(
                source_fd, leave_out, _Meter(ctx, survey["bytes"], survey["files"])
            )
            size = staged.stat().st_size
            try:
                staged.publish(replace=overwrite)
            except FileExistsError:
                raise FileJobError(f"{target_dir / name} appeared meanwhile; kept") from None
    skipped = survey["skipped"]
    ctx.logger.info(
        "archived %s into %s: %d files, %s -> %s",
        source,
        target_dir / name,
        counts["files"],
        size_text(counts["bytes"]),
        size_text(size),
    )
    return {
        "archive": str(target_dir / name),
        "format": kind,
        "files": counts["files"],
        "directories": counts["directories"],
        "bytes_in": counts["bytes"],
        "bytes_out": size,
        "skipped_count": len(skipped),
        "skipped": skipped[:SHOWN],
    }


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _survey(top_fd: int, top: Path) -> dict[str, Any]:
    """Count what will be archived (for progress), and refuse a symlink that leads out."""
    files = size = 0
    skipped: list[dict[str, str]] = []
    escaping: list[str] = []
    for entry in walk(top_fd):
        if entry.kind == "file" and not is_partial_name(entry.name):
            files += 1
            size += entry.info.st_size
        elif entry.kind == "symlink":
            target = os.readlink(entry.name, dir_fd=entry.parent_fd)
            resolved = Path(os.path.realpath(top.joinpath(*entry.parts[:-1], target)))
            if is_inside(resolved, top):
                skipped.append({"path": entry.relative, "reason": "symlink"})
            else:
                escaping.append(entry.relative)
        elif entry.kind == "other":
            skipped.append({"path": entry.relative, "reason": "not a regular file"})
    if escaping:
        shown = ", ".join(repr(path) for path in escaping[:10])
        more = f" (and {len(escaping) - 10} more)" if len(escaping) > 10 else ""
        raise FileJobError(
            f"nothing archived: {len(escaping)} symlinks in {top} lead outside it: {shown}{more}"
        )
    return {"files": files, "bytes": size, "skipped": skipped}


class _Meter:
    """Progress in bytes, and the cancellation check, as the data goes by."""

    def __init__(self, ctx: JobContext, total_bytes: int, total_files: int):
        self.ctx = ctx
        self.total_bytes = total_bytes
        self.total_files = total_files
        self.bytes = 0
        self.files = 0

    def add(self, count: int) -> None:
        self.bytes += count
        total = max(self.total_bytes, self.bytes)
        self.ctx.progress(self.bytes, total, f"{self.files} of {self.total_files} files")
        self.ctx.stop_if_cancelled()

    def file_done(self) -> None:
        self.files += 1
        self.add(0)


class _Writer:
    """Walks the tree and hands each directory and file to the format's own methods."""

    def __init__(self, fd: int):
        self.fd = fd

    def write_tree(
        self, top_fd: int, leave_out: set[tuple[int, int]], meter: _Meter
    ) -> dict[str, int]:
        counts = {"files": 0, "directories": 0, "bytes": 0}
        with os.fdopen(self.fd, "wb", closefd=False) as out:
            self.open(out)
            for entry in walk(top_fd):
                if _identity(entry.info) in leave_out or is_partial_name(entry.name):
                    continue
                if entry.kind == "dir":
                    self.directory(entry)
                    counts["directories"] += 1
                elif entry.kind == "file":
                    counts["bytes"] += self._file(entry, meter)
                    counts["files"] += 1
                    meter.file_done()
            self.close()
        return counts

    def _file(self, entry: Entry, meter: _Meter) -> int:
        try:
            fd = open_regular(entry.parent_fd, entry.name)
        except FileNotFoundError:
            return 0  # removed since the walk listed it
        with os.fdopen(fd, "rb") as source:
            info = os.fstat(fd)
            written = self.file(entry, info, source, meter.add)
        if written != info.st_size:
            raise FileJobError(f"{entry.relative} changed size while it was archived")
        return written

    def open(self, out: IO[bytes]) -> None:
        raise NotImplementedError

    def directory(self, entry: Entry) -> None:
        raise NotImplementedError

    def file(
        self, entry: Entry, info: os.stat_result, source: IO[bytes], add: Callable[[int], None]
    ) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def _copy(source: IO[bytes], target: Any, add: Callable[[int], None], limit: int) -> int:
    """Copy at most ``limit`` bytes a chunk at a time; the number copied."""
    copied = 0
    while copied < limit:
        chunk = source.read(min(CHUNK, limit - copied))
        if not chunk:
            break
        target.write(chunk)
        copied += len(chunk)
        add(len(chunk))
    return copied


class _ZipWriter(_Writer):
    def open(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(
            out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
        )

    def directory(self, entry: Entry) -> None:
        info = zipfile.ZipInfo(entry.relative + "/", _zip_time(entry.info.st_mtime))
        info.external_attr = (entry.info.st_mode & 0xFFFF) << 16 | 0x10  # 0x10: MS-DOS dir
        self.zip.writestr(info, b"")

    def file(
        self, entry: Entry, info: os.stat_result, source: IO[bytes], add: Callable[[int], None]
    ) -> int:
        member = zipfile.ZipInfo(entry.relative, _zip_time(info.st_mtime))
        member.external_attr = (info.st_mode & 0xFFFF) << 16
        member.compress_type = zipfile.ZIP_DEFLATED
        member.file_size = info.st_size  # picks ZIP64 for a large file up front
        with self.zip.open(member, "w") as target:
            # Up to the size announced: a file growing meanwhile is cut there, as in a tar.
            return _copy(source, target, add, info.st_size)

    def close(self) -> None:
        self.zip.close()


def _zip_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    moment = time.localtime(mtime)[:6]
    return min(max(moment, _ZIP_EARLIEST), _ZIP_LATEST)


class _TarGzWriter(_Writer):
    """A POSIX (pax) tar stream, gzip-compressed. The headers are ``TarInfo.tobuf``'s; the
    rest is written here so nothing is kept per file (``TarFile`` keeps every member)."""

    def open(self, out: IO[bytes]) -> None:
        self.gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=out, compresslevel=COMPRESS_LEVEL, mtime=0
        )
        self.offset = 0

    def _header(self, member: tarfile.TarInfo) -> None:
        self.write(member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def write(self, data: bytes) -> None:
        self.gz.write(data)
        self.offset += len(data)

    def _pad(self, size: int) -> None:
        remainder = size % tarfile.BLOCKSIZE
        if remainder:
            self.write(tarfile.NUL * (tarfile.BLOCKSIZE - remainder))

    def directory(self, entry: Entry) -> None:
        member = tarfile.TarInfo(entry.relative)
        member.type = tarfile.DIRTYPE
        member.mode = entry.info.st_mode & 0o7777
        member.mtime = int(entry.info.st_mtime)
        self._header(member)

    def file(
        self, entry: Entry, info: os.stat_result, source: IO[bytes], add: Callable[[int], None]
    ) -> int:
        member = tarfile.TarInfo(entry.relative)
        member.size = info.st_size
        member.mode = info.st_mode & 0o7777
        member.mtime = int(info.st_mtime)
        self._header(member)
        copied = _copy(source, self, add, info.st_size)
        self._pad(copied)
        return copied

    def close(self) -> None:
        # The end of the archive: two zero blocks, then up to a whole record.
        self.write(tarfile.NUL * tarfile.BLOCKSIZE * 2)
        self._pad_record()
        self.gz.close()

    def _pad_record(self) -> None:
        remainder = self.offset % tarfile.RECORDSIZE
        if remainder:
            self.write(tarfile.NUL * (tarfile.RECORDSIZE - remainder))
