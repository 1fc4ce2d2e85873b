"""``builtin.archive_directory`` on real trees, read back with zipfile/tarfile and with
``builtin.extract_archive`` (the round trip)."""

from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from jobs_catalog import JobCancelled, JobContext
from jobs_catalog.builtin.files import FileJobError
from jobs_catalog.errors import ParameterError
from jobs_catalog.registry import registry
from tests.builtin.conftest import assert_field_error
from tests.builtin.controls import Control

NAME = "builtin.archive_directory"


@pytest.fixture
def job():
    return registry.get(NAME)


def run(job, control: Control | None = None, **params):
    return job.call(params, JobContext(job=NAME, control=control))


def tree(base: Path) -> dict[str, bytes | None]:
    """Every entry below ``base``: relative path -> content (None for a directory)."""
    out: dict[str, bytes | None] = {}
    for path in sorted(base.rglob("*")):
        key = path.relative_to(base).as_posix()
        out[key] = None if path.is_dir() else path.read_bytes()
    return out


def make_tree(base: Path) -> None:
    (base / "docs" / "deep" / "er").mkdir(parents=True)
    (base / "empty").mkdir()
    (base / "a.txt").write_text("alpha\n" * 1000)
    (base / "docs" / "b.bin").write_bytes(os.urandom(300 * 1024))
    (base / "docs" / "deep" / "er" / "c.txt").write_text("c")
    (base / "docs" / "zero").write_bytes(b"")
    (base / "ünïcode név.txt").write_text("ü")
    (base / "run.sh").write_text("#!/bin/sh\n")
    (base / "run.sh").chmod(0o755)


@pytest.fixture
def dirs(root: Path) -> tuple[Path, Path]:
    source, out = root / "source", root / "out"
    source.mkdir()
    out.mkdir()
    make_tree(source)
    return source, out


def members(archive: Path) -> dict[str, bytes | None]:
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            assert z.testzip() is None
            return {i.filename.rstrip("/"): None if i.is_dir() else z.read(i) for i in z.infolist()}
    with tarfile.open(archive, "r:gz") as t:
        return {
            m.name: None if m.isdir() else t.extractfile(m).read()  # type: ignore[union-attr]
            for m in t.getmembers()
        }


@pytest.mark.parametrize("name", ["backup.zip", "backup.tar.gz", "backup.tgz"])
def test_archives_the_whole_tree(job, dirs, name):
    source, out = dirs

    result = run(job, directory=str(source), destination=str(out), name=name)

    archive = out / name
    assert os.listdir(out) == [name]  # no partial file left
    assert members(archive) == tree(source)
    assert result["archive"] == str(archive)
    assert result["format"] == ("zip" if name.endswith(".zip") else "tar.gz")
    assert (result["files"], result["directories"]) == (6, 4)
    assert result["bytes_in"] == sum(len(v) for v in tree(source).values() if v is not None)
    assert result["bytes_out"] == archive.stat().st_size
    assert result["skipped_count"] == 0


@pytest.mark.parametrize("name", ["round.zip", "round.tar.gz"])
def test_round_trip_through_extract(job, dirs, root: Path, name):
    source, out = dirs
    run(job, directory=str(source), destination=str(out), name=name)
    back = root / "back"
    back.mkdir()

    registry.get("builtin.extract_archive").call(
        {"archive": str(out / name), "destination": str(back)}, JobContext(job="x")
    )

    assert tree(back) == tree(source)
    assert os.access(back / "run.sh", os.X_OK)
    assert not os.access(back / "a.txt", os.X_OK)
    assert abs((back / "a.txt").stat().st_mtime - (source / "a.txt").stat().st_mtime) <= 2


def test_progress_counts_bytes(job, dirs, unthrottled):
    source, out = dirs
    control = Control()

    result = run(job, control, directory=str(source), destination=str(out), name="p.zip")

    last = control.reports[-1]
    assert (last.done, last.total) == (result["bytes_in"], result["bytes_in"])
    assert last.message == "6 of 6 files"
    done = [p.done for p in control.reports]
    assert done == sorted(done) and len(done) > 6


def test_cancelled_midway_leaves_no_archive(job, dirs, unthrottled):
    source, out = dirs
    control = Control(cancel_when=lambda c: len(c.reports) >= 2)

    with pytest.raises(JobCancelled):
        run(job, control, directory=str(source), destination=str(out), name="c.tar.gz")

    assert os.listdir(out) == []
    assert 2 <= len(control.reports) < 6


# --- symlinks and special files -----------------------------------------------------------
def test_a_symlink_leading_out_refuses_the_job(job, dirs, tmp_path: Path):
    source, out = dirs
    (tmp_path / "outside" / "secret").write_text("secret")
    (source / "docs" / "leak").symlink_to(tmp_path / "outside" / "secret")
    (source / "up").symlink_to("../..")

    with pytest.raises(FileJobError) as caught:
        run(job, directory=str(source), destination=str(out), name="x.zip")

    message = str(caught.value)
    assert "nothing archived: 2 symlinks" in message and "'docs/leak'" in message
    assert "'up'" in message
    assert os.listdir(out) == []


def test_symlinks_inside_and_special_files_are_left_out(job, dirs):
    source, out = dirs
    (source / "link").symlink_to("a.txt")
    (source / "docs" / "dirlink").symlink_to("deep")
    os.mkfifo(source / "pipe")

    result = run(job, directory=str(source), destination=str(out), name="x.tar.gz")

    names = set(members(out / "x.tar.gz"))
    assert {"link", "docs/dirlink", "pipe"}.isdisjoint(names)
    assert "docs/deep/er/c.txt" in names
    assert result["skipped"] == [
        {"path": "docs/dirlink", "reason": "symlink"},
        {"path": "link", "reason": "symlink"},
        {"path": "pipe", "reason": "not a regular file"},
    ]


# --- where the archive goes -----------------------------------------------------------------
def test_an_archive_inside_the_directory_leaves_itself_out(job, dirs):
    source, _ = dirs
    (source / ".other.partial").write_text("a file another job is writing")

    run(job, directory=str(source), destination=str(source / "docs"), name="self.zip")

    names = set(members(source / "docs" / "self.zip"))
    assert "docs/self.zip" not in names and "docs/.self.zip.partial" not in names
    assert ".other.partial" not in names
    assert "docs/b.bin" in names


def test_an_existing_archive_is_kept_unless_overwrite(job, dirs):
    source, out = dirs
    (out / "x.zip").write_text("old")

    with pytest.raises(FileJobError, match="already exists; set overwrite"):
        run(job, directory=str(source), destination=str(out), name="x.zip")
    assert (out / "x.zip").read_text() == "old"

    run(job, directory=str(source), destination=str(out), name="x.zip", overwrite=True)

    assert members(out / "x.zip") == tree(source)
    assert os.listdir(out) == ["x.zip"]


def test_a_partial_archive_left_by_a_crash_is_replaced(job, dirs):
    source, out = dirs
    (out / ".x.zip.partial").write_bytes(b"half an archive")

    run(job, directory=str(source), destination=str(out), name="x.zip")

    assert os.listdir(out) == ["x.zip"]
    assert members(out / "x.zip") == tree(source)


# --- bad input ------------------------------------------------------------------------------
def refused(job, params: dict, field: str) -> str:
    with pytest.raises(ParameterError) as caught:
        job.validate(params)
    assert_field_error(caught.value, NAME, field)
    return " ".join(caught.value.by_field()[field])


def test_bad_parameters_are_refused(job, dirs, tmp_path: Path):
    source, out = dirs
    good = {"directory": str(source), "destination": str(out), "name": "a.zip"}
    cases = [
        ({"directory": str(source / "nope")}, "directory", "not an existing directory"),
        ({"directory": str(tmp_path / "outside")}, "directory", "outside the directories"),
        ({"destination": str(out / "nope")}, "destination", "not an existing directory"),
        ({"destination": str(tmp_path)}, "destination", "outside the directories"),
        ({"name": "a.rar"}, "name", "must end with .zip, .tar.gz or .tgz"),
        ({"name": ".zip"}, "name", "must end with"),
        ({"name": "../a.zip"}, "name", "without '/'"),
        ({"name": ".a.zip.partial"}, "name", "kept for unfinished files"),
    ]
    for change, field, message in cases:
        assert message in refused(job, {**good, **change}, field), change
    assert os.listdir(out) == []
