"""``builtin.extract_archive`` on real archives, well-made and hostile."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from jobs_catalog import JobCancelled, JobContext
from jobs_catalog.builtin import extraction
from jobs_catalog.builtin.files import FileJobError
from jobs_catalog.errors import ParameterError
from jobs_catalog.registry import registry
from tests.builtin.conftest import assert_field_error
from tests.builtin.controls import Control

NAME = "builtin.extract_archive"
MIB = 1024 * 1024


@pytest.fixture
def job():
    return registry.get(NAME)


@pytest.fixture
def dest(root: Path) -> Path:
    path = root / "dest"
    path.mkdir()
    (path / "kept.txt").write_text("was here before")
    return path


def run(job, control: Control | None = None, **params):
    return job.call(params, JobContext(job=NAME, control=control))


def everything(base: Path) -> dict[str, str]:
    """Every entry below ``base``, hidden ones included: path -> a short description."""
    out = {}
    for path in sorted(base.rglob("*")):
        key = path.relative_to(base).as_posix()
        out[key] = "dir" if path.is_dir() else path.read_bytes()[:40].decode("latin-1")
    return out


# --- archives made here -------------------------------------------------------------------
def make_zip(path: Path, entries: list[tuple[str, bytes]], mode: int | None = None) -> Path:
    """A zip of (name, data); ``mode`` sets the Unix mode of every entry."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in entries:
                info = zipfile.ZipInfo(name, (2024, 5, 6, 7, 8, 10))
                info.compress_type = zipfile.ZIP_DEFLATED
                if mode is not None:
                    info.external_attr = mode << 16
                z.writestr(info, data)
    return path


def make_tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """A tar.gz of TarInfos (no data) and (name, data) files."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as t:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                t.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 1_700_000_000
                t.addfile(info, io.BytesIO(data))
    return path


def tar_entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


FILES = [("top.txt", b"top"), ("dir/inner.txt", b"inner"), ("dir/sub/deep.bin", b"\0\1\2" * 999)]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_extracts_into_the_destination(job, root: Path, dest: Path, kind, unthrottled):
    archive = root / f"a.{kind}"
    if kind == "zip":
        make_zip(archive, [("dir/", b""), *FILES])
    else:
        make_tar(archive, [tar_entry("dir", tarfile.DIRTYPE), *FILES])
    control = Control()

    result = run(job, control, archive=str(archive), destination=str(dest))

    assert everything(dest) == {
        "dir": "dir",
        "dir/inner.txt": "inner",
        "dir/sub": "dir",
        "dir/sub/deep.bin": ("\0\1\2" * 14)[:40],
        "kept.txt": "was here before",
        "top.txt": "top",
    }  # and no working directory left
    assert result["format"] == kind
    assert (result["files"], result["directories"]) == (3, 1)
    assert result["bytes"] == 3 + 5 + 2997
    assert result["top_level"] == ["dir", "top.txt"]
    assert control.reports[-1].done == 4
    assert control.reports[-1].total == (4 if kind == "zip" else None)


def test_modes_and_times_are_kept_without_special_bits(job, root: Path, dest: Path):
    archive = make_zip(root / "m.zip", [("run.sh", b"#!/bin/sh")], mode=stat.S_IFREG | 0o4755)

    run(job, archive=str(archive), destination=str(dest))

    info = (dest / "run.sh").stat()
    assert stat.S_IMODE(info.st_mode) & 0o7000 == 0
    assert info.st_mode & stat.S_IXUSR
    assert time.localtime(info.st_mtime)[:6] == (2024, 5, 6, 7, 8, 10)


# --- refusals: nothing extracted ------------------------------------------------------------
def assert_refused(job, archive: Path, dest: Path, expected: str, **params) -> str:
    before = everything(dest)
    outside = sorted(os.listdir(dest.parent.parent))
    with pytest.raises(FileJobError) as caught:
        run(job, archive=str(archive), destination=str(dest), **params)
    message = str(caught.value)
    assert expected in message, message
    assert everything(dest) == before  # not even the working directory is left
    assert sorted(os.listdir(dest.parent.parent)) == outside
    return message


TRAVERSALS = ["../evil.txt", "dir/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt", "C:/evil.txt"]


@pytest.mark.parametrize("name", TRAVERSALS)
@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_entries_leading_out_are_refused(job, root: Path, dest: Path, kind, name):
    entries = [("first.txt", b"fine"), (name, b"evil")]
    archive = root / f"t.{kind}"
    make_zip(archive, entries) if kind == "zip" else make_tar(archive, entries)

    message = assert_refused(job, archive, dest, "refused, nothing extracted")

    assert "absolute path" in message or "leads outside the destination" in message
    assert not (root / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (tar_entry("link", tarfile.SYMTYPE, "/etc/passwd"), "'link' is a symlink"),
        (tar_entry("inside", tarfile.SYMTYPE, "top.txt"), "'inside' is a symlink"),
        (tar_entry("hard", tarfile.LNKTYPE, "top.txt"), "'hard' is a hard link"),
        (tar_entry("dev", tarfile.CHRTYPE), "'dev' is a device or special file"),
        (tar_entry("blk", tarfile.BLKTYPE), "'blk' is a device or special file"),
        (tar_entry("fifo", tarfile.FIFOTYPE), "'fifo' is a device or special file"),
    ],
)
def test_links_and_devices_in_a_tar_are_refused(job, root: Path, dest: Path, entry, expected):
    archive = make_tar(root / "l.tar.gz", [("top.txt", b"top"), entry])
    assert_refused(job, archive, dest, expected)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(stat.S_IFLNK | 0o777, "is a symlink"), (stat.S_IFIFO | 0o644, "device or special file")],
)
def test_links_and_special_files_in_a_zip_are_refused(job, root: Path, dest: Path, mode, expected):
    archive = make_zip(root / "l.zip", [("link", b"/etc/passwd")], mode=mode)
    assert_refused(job, archive, dest, expected)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_zip_bomb_is_refused_by_its_ratio(job, root: Path, dest: Path, kind):
    zeros = [("bomb.bin", b"\0" * 20 * MIB)]
    archive = root / f"bomb.{kind}"
    make_zip(archive, zeros) if kind == "zip" else make_tar(archive, zeros)
    assert archive.stat().st_size < 100 * 1024  # a ratio in the hundreds at least

    assert_refused(job, archive, dest, "expands more than max_ratio (100) times")
    # A higher ratio lets it through: the cap is the ratio, not the size.
    run(job, archive=str(archive), destination=str(dest), max_ratio=100_000)
    assert (dest / "bomb.bin").stat().st_size == 20 * MIB


def test_a_listing_that_understates_sizes_gains_nothing(job, root: Path, dest: Path):
    archive = make_zip(root / "liar.zip", [("a.bin", b"\0" * 10 * MIB)])
    # The listing and the local header now claim 1 KiB uncompressed: a check of the
    # announced sizes would see nothing to fear.
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(signature) + offset
        data[at : at + 4] = (1024).to_bytes(4, "little")
    archive.write_bytes(bytes(data))

    assert_refused(job, archive, dest, "damaged or not a valid archive, nothing extracted")


def test_the_total_size_cap_holds(job, root: Path, dest: Path):
    entries = [(f"f{i}", os.urandom(MIB)) for i in range(3)]
    archive = make_tar(root / "big.tar.gz", entries)

    assert_refused(job, archive, dest, "take more than max_total_mb (2.0 MiB)", max_total_mb=2)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_too_many_files_are_refused(job, root: Path, dest: Path, kind):
    entries = [(f"f{i}", b"x") for i in range(10)]
    archive = root / f"many.{kind}"
    make_zip(archive, entries) if kind == "zip" else make_tar(archive, entries)

    assert_refused(job, archive, dest, "more than max_files (5) entries", max_files=5)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_entry_twice_is_refused(job, root: Path, dest: Path, kind):
    entries = [("a.txt", b"first"), ("a.txt", b"second")]
    archive = root / f"twice.{kind}"
    make_zip(archive, entries) if kind == "zip" else make_tar(archive, entries)

    assert_refused(job, archive, dest, "'a.txt' appears twice")


def test_a_file_where_the_archive_has_a_directory_is_refused(job, root: Path, dest: Path):
    archive = make_tar(root / "clash.tar.gz", [("a", b"file"), ("a/b", b"below a file")])
    assert_refused(job, archive, dest, "'a/b' clashes with a file of the archive")


def test_an_oversized_tar_header_is_refused_before_it_is_read(job, root: Path, dest: Path):
    info = tarfile.TarInfo("a.txt")
    info.pax_headers = {"comment": "x" * (extraction.MAX_TAR_HEADER + 1)}
    archive = make_tar(root / "pax.tar.gz", [info])
    assert_refused(job, archive, dest, "an extended header of")


def test_an_encrypted_zip_entry_is_refused(job, root: Path, dest: Path):
    archive = make_zip(root / "enc.zip", [("a.txt", b"secret")])
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x1  # the "encrypted" flag, in the local header and the listing
    archive.write_bytes(bytes(data))

    assert_refused(job, archive, dest, "'a.txt' is encrypted")


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_a_damaged_archive_is_refused(job, root: Path, dest: Path, kind):
    entries = [(f"f{i}", os.urandom(50_000)) for i in range(4)]
    archive = root / f"cut.{kind}"
    make_zip(archive, entries) if kind == "zip" else make_tar(archive, entries)
    data = archive.read_bytes()
    if kind == "zip":
        cut = data.index(b"PK\x03\x04", 100)  # the second file's data goes missing
        archive.write_bytes(data[:cut] + b"\0" * 1000 + data[cut + 1000 :])
    else:
        archive.write_bytes(data[: len(data) // 2])

    assert_refused(job, archive, dest, "nothing extracted")


def test_something_else_is_refused(job, root: Path, dest: Path):
    archive = root / "notes.zip"
    archive.write_text("just text")
    assert_refused(job, archive, dest, "neither a zip nor a tar.gz archive")


# --- what is in the destination already -----------------------------------------------------
def test_existing_files_are_not_replaced_unless_overwrite(job, root: Path, dest: Path):
    archive = make_zip(root / "o.zip", [("new.txt", b"new"), ("kept.txt", b"replacement")])

    assert_refused(job, archive, dest, "'kept.txt' already exists (set overwrite")

    run(job, archive=str(archive), destination=str(dest), overwrite=True)
    assert (dest / "kept.txt").read_text() == "replacement"
    assert (dest / "new.txt").read_text() == "new"


def test_a_directory_is_never_replaced_by_a_file(job, root: Path, dest: Path):
    (dest / "thing").mkdir()
    archive = make_zip(root / "o.zip", [("thing", b"a file")])

    assert_refused(job, archive, dest, "'thing' is a file, but a directory", overwrite=True)


def test_files_merge_into_existing_directories(job, root: Path, dest: Path):
    (dest / "dir").mkdir()
    (dest / "dir" / "old.txt").write_text("old")
    archive = make_zip(root / "m.zip", [("dir/new.txt", b"new")])

    run(job, archive=str(archive), destination=str(dest))

    assert sorted(os.listdir(dest / "dir")) == ["new.txt", "old.txt"]


def test_a_symlinked_directory_in_the_destination_is_not_followed(
    job, root: Path, dest: Path, tmp_path: Path
):
    (dest / "dir").symlink_to(tmp_path / "outside")
    archive = make_zip(root / "s.zip", [("dir/evil.txt", b"evil")])

    assert_refused(job, archive, dest, "'dir' is a directory, but a file or a symlink has")
    assert os.listdir(tmp_path / "outside") == []


# --- cancellation and leftovers -------------------------------------------------------------
def test_cancelled_midway_leaves_nothing(job, root: Path, dest: Path, unthrottled):
    archive = make_zip(root / "c.zip", [(f"f{i}", b"x" * 1000) for i in range(20)])
    before = everything(dest)
    control = Control(cancel_when=lambda c: len(c.reports) >= 3)

    with pytest.raises(JobCancelled):
        run(job, control, archive=str(archive), destination=str(dest))

    assert everything(dest) == before
    assert len(control.reports) == 3


def test_a_dead_runs_working_directory_is_removed_and_a_live_one_kept(job, root: Path, dest: Path):
    stale = dest / ".extract-00000000000000aa.partial"
    (stale / "half").mkdir(parents=True)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    live = dest / ".extract-00000000000000bb.partial"
    live.mkdir()
    os.utime(live, (old, old))
    archive = make_zip(root / "a.zip", [("a.txt", b"a")])
    import fcntl

    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another run's
        run(job, archive=str(archive), destination=str(dest))
    finally:
        os.close(fd)

    assert sorted(os.listdir(dest)) == [".extract-00000000000000bb.partial", "a.txt", "kept.txt"]


# --- bad input ------------------------------------------------------------------------------
def test_bad_parameters_are_refused(job, root: Path, dest: Path, tmp_path: Path):
    archive = make_zip(root / "a.zip", [("a", b"a")])
    (tmp_path / "outside" / "o.zip").write_bytes(archive.read_bytes())
    good = {"archive": str(archive), "destination": str(dest)}
    cases = [
        ({"archive": str(root / "nope.zip")}, "archive", "not an existing file"),
        ({"archive": str(root)}, "archive", "not an existing file"),
        ({"archive": str(tmp_path / "outside" / "o.zip")}, "archive", "outside the directories"),
        ({"destination": str(dest / "nope")}, "destination", "not an existing directory"),
        ({"destination": str(tmp_path / "outside")}, "destination", "outside the directories"),
        ({"max_files": 0}, "max_files", "greater than or equal to 1"),
        ({"max_ratio": 0.5}, "max_ratio", "greater than or equal to 1"),
        ({"max_total_mb": -1}, "max_total_mb", "greater than 0"),
    ]
    before = everything(dest)
    for change, field, message in cases:
        with pytest.raises(ParameterError) as caught:
            job.validate({**good, **change})
        assert_field_error(caught.value, NAME, field)
        assert message in " ".join(caught.value.by_field()[field]), change
    assert everything(dest) == before
