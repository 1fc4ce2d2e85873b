"""Writing files safely beneath an allowlisted directory, for the bulk file jobs.

Every path is opened relative to a directory descriptor, one component at a time and never
through a symlink, so a directory swapped for a link while a job runs cannot lead it outside.
A file is written under a hidden partial name (``.<name>.partial``), locked while it is
written, and given its name only when it is complete: a crash leaves at most a partial file,
never a truncated file under its real name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jobs_catalog.errors import JobError

PARTIAL_PREFIX = "."
PARTIAL_SUFFIX = ".partial"
#: Bytes of a file name at most: room is left for the partial name's affixes within the
#: usual 255-byte limit.
NAME_MAX_BYTES = 240
#: Errors of a file system that has no hard links (so a no-clobber rename falls back).
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV})
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileBusyError(JobError):
    """Another run is writing the same file right now (it holds the partial file's lock)."""


def file_name(value: str) -> str:
    """Pydantic ``AfterValidator`` (and run-time check): one plain file name, no path."""
    if value in ("", ".", ".."):
        raise ValueError("must be a file name, not empty, '.' or '..'")
    if "/" in value or "\\" in value:
        raise ValueError("must be a file name, without '/' or '\\'")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("must not contain control characters")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    if is_partial_name(value):
        raise ValueError(f"names like '.<name>{PARTIAL_SUFFIX}' are kept for unfinished files")
    if len(value.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES:
        raise ValueError(f"is longer than {NAME_MAX_BYTES} bytes")
    return value


def is_partial_name(name: str) -> bool:
    return name.startswith(PARTIAL_PREFIX) and name.endswith(PARTIAL_SUFFIX)


def partial_name(name: str) -> str:
    return f"{PARTIAL_PREFIX}{name}{PARTIAL_SUFFIX}"


def open_directory(path: Path | str, dir_fd: int | None = None) -> int:
    """A descriptor of the directory ``path`` (refusing a symlink as its last component)."""
    return os.open(path, _DIRECTORY_FLAGS, dir_fd=dir_fd)


class Staged:
    """A file being written beneath ``dir_fd`` as ``.<name>.partial``.

    A leftover partial file of a crashed run is taken over (truncated); one that another run
    still holds locked raises :class:`FileBusyError`. :meth:`publish` gives the file its name
    once complete; :meth:`discard` (or leaving the ``with`` block without publishing)
    removes it.
    """

    def __init__(self, dir_fd: int, name: str):
        self.dir_fd = dir_fd
        self.name = name
        self.partial = partial_name(name)
        self.fd = self._open_locked()
        self.published = False

    def _open_locked(self) -> int:
        # O_NONBLOCK: a FIFO planted under the partial name fails at once instead of
        # blocking; it changes nothing for a regular file.
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _ in range(5):
            fd = os.open(self.partial, flags, 0o644, dir_fd=self.dir_fd)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise FileBusyError(
                        f"{self.name}: another run is writing it right now"
                    ) from None
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode):
                    raise FileExistsError(
                        errno.EEXIST, "exists and is not a regular file", self.partial
                    )
                # The lock is ours, but the name may have moved on meanwhile (the file we
                # opened was just published under its real name): then open again.
                if _same_file(opened, self.dir_fd, self.partial) and opened.st_nlink == 1:
                    os.ftruncate(fd, 0)
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        raise FileBusyError(f"{self.name}: its partial file keeps changing under this run")

    def stat(self) -> os.stat_result:
        return os.fstat(self.fd)

    def publish(self, *, replace: bool = False) -> None:
        """Flush the data to disk and give the file its name. Without ``replace`` an existing
        file of that name is never replaced (``FileExistsError``)."""
        os.fsync(self.fd)
        move(self.dir_fd, self.partial, self.dir_fd, self.name, replace=replace)
        self.published = True
        self.close()

    def discard(self) -> None:
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            if not self.published and _same_file(os.fstat(self.fd), self.dir_fd, self.partial):
                os.unlink(self.partial, dir_fd=self.dir_fd)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()


def _same_file(info: os.stat_result, dir_fd: int, name: str) -> bool:
    try:
        current = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino)


def move(src_dir_fd: int, src: str, dst_dir_fd: int, dst: str, *, replace: bool = False) -> None:
    """Rename ``src`` to ``dst`` atomically. Without ``replace``, an existing ``dst`` is left
    alone and ``FileExistsError`` raised: the file is hard-linked under its new name (which
    fails if the name is taken) and the old name removed; on a file system without hard
    links, a check just before a plain rename stands in."""
    if replace:
        os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        return
    try:
        os.link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if exists(dst_dir_fd, dst):
            raise FileExistsError(errno.EEXIST, "already exists", dst) from None
        os.rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        return
    os.unlink(src, dir_fd=src_dir_fd)


def exists(dir_fd: int, name: str) -> bool:
    try:
        os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


@contextlib.contextmanager
def directories(base_fd: int, parts: tuple[str, ...], *, create: bool) -> Iterator[int]:
    """A descriptor of ``base/parts...``, walked down one component at a time without
    following a symlink (made where missing with ``create``)."""
    fds: list[int] = []
    try:
        fd = base_fd
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            fd = open_directory(part, dir_fd=fd)
            fds.append(fd)
        yield fd
    finally:
        for fd in reversed(fds):
            os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One entry of a tree walked by :func:`walk`: its path below the top as components, its
    kind (``dir``, ``file``, ``symlink`` or ``other``), and its parent's descriptor (valid
    only until the walk moves on)."""

    parts: tuple[str, ...]
    kind: str
    parent_fd: int
    info: os.stat_result

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def relative(self) -> str:
        return "/".join(self.parts)


def walk(top_fd: int, _parts: tuple[str, ...] = ()) -> Iterator[Entry]:
    """Every entry below ``top_fd``, depth first, names sorted, a directory before what it
    holds. Symlinks are reported, never followed; one directory's names are in memory at a
    time per level, nothing more."""
    with os.scandir(top_fd) as listing:
        names = sorted(entry.name for entry in listing)
    for name in names:
        try:
            info = os.lstat(name, dir_fd=top_fd)
        except FileNotFoundError:
            continue  # removed since the listing
        parts = (*_parts, name)
        if stat.S_ISDIR(info.st_mode):
            yield Entry(parts, "dir", top_fd, info)
            try:
                child = open_directory(name, dir_fd=top_fd)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # swapped for a symlink since the lstat
                    continue
                raise
            try:
                yield from walk(child, parts)
            finally:
                os.close(child)
        elif stat.S_ISLNK(info.st_mode):
            yield Entry(parts, "symlink", top_fd, info)
        elif stat.S_ISREG(info.st_mode):
            yield Entry(parts, "file", top_fd, info)
        else:
            yield Entry(parts, "other", top_fd, info)


def open_regular(dir_fd: int, name: str) -> int:
    """A read descriptor of the regular file ``name`` (not a symlink, FIFO or device)."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "is no longer a regular file", name)
    return fd


def size_text(count: float) -> str:
    """``count`` bytes for a message: ``512 bytes``, ``1.5 KiB``, ``600.0 MiB``."""
    if count < 1024:
        return f"{int(count)} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        count /= 1024
        if count < 1024 or unit == "GiB":
            break
    return f"{count:.1f} {unit}"
