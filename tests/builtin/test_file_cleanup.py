from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import override_settings

from jobs_catalog import JobContext
from jobs_catalog.builtin import files
from jobs_catalog.builtin.files import FileJobError, file_cleanup
from jobs_catalog.errors import ParameterError
from jobs_catalog.paths import PathNotAllowedError
from jobs_catalog.registry import registry
from tests.builtin.conftest import assert_field_error, old, snapshot

NAME = "builtin.file_cleanup"


@pytest.fixture
def job():
    return registry.get(NAME)


def run(job, **params):
    return job.call(params, JobContext(job=NAME))


def test_deletes_old_matching_files_only(job, root: Path):
    old(root / "a.log", 10, "aaaa")
    old(root / "b.log", 8, "bb")
    old(root / "fresh.log", 1)
    old(root / "a.txt", 10)
    old(root / "sub" / "deep.log", 10)

    result = run(job, directory=str(root), pattern="*.log", older_than_days=7)

    assert result["count"] == 2 and result["bytes"] == 6
    assert result["removed"] == ["a.log", "b.log"]  # oldest first
    assert result["dry_run"] is False and result["limited"] is False
    assert sorted(snapshot(root)) == ["a.txt", "fresh.log", "sub", "sub/deep.log"]


def test_recursive_pattern(job, root: Path):
    old(root / "x.tmp", 3)
    old(root / "one" / "y.tmp", 3)
    old(root / "one" / "two" / "z.tmp", 3)
    old(root / "one" / "keep.txt", 3)

    result = run(job, directory=str(root), pattern="**/*.tmp", older_than_days=2)

    assert sorted(result["removed"]) == ["one/two/z.tmp", "one/y.tmp", "x.tmp"]
    assert sorted(snapshot(root)) == ["one", "one/keep.txt", "one/two"]


def test_dry_run_deletes_nothing_and_says_what_it_would_remove(job, root: Path, caplog):
    old(root / "a.log", 10)
    before = snapshot(root)

    with caplog.at_level("INFO"):
        result = run(job, directory=str(root), pattern="*.log", older_than_days=1, dry_run=True)

    assert result["dry_run"] is True
    assert result["would_remove"] == ["a.log"] and result["count"] == 1
    assert "removed" not in result  # nothing was
    assert snapshot(root) == before
    [line] = [r.getMessage() for r in caplog.records if " files (" in r.getMessage()]
    assert line.startswith("dry run: would remove 1 files") and "removed" not in line


def test_a_real_run_logs_what_it_removed(job, root: Path, caplog):
    old(root / "a.log", 10)
    with caplog.at_level("INFO"):
        result = run(job, directory=str(root), pattern="*.log", older_than_days=1)
    assert result["removed"] == ["a.log"] and "would_remove" not in result
    assert any(r.getMessage().startswith("removed 1 files") for r in caplog.records)


def test_max_files_takes_the_oldest(job, root: Path):
    for days in (5, 9, 7):
        old(root / f"{days}.log", days)

    result = run(job, directory=str(root), older_than_days=1, max_files=2)

    assert result["removed"] == ["9.log", "7.log"] and result["limited"] is True
    assert sorted(snapshot(root)) == ["5.log"]


def test_report_is_bounded_but_counts_are_complete(job, root: Path, monkeypatch):
    monkeypatch.setattr(files, "REPORT_LIMIT", 2)
    for i in range(5):
        old(root / f"{i}.log", 3)

    result = run(job, directory=str(root), older_than_days=1)

    assert result["count"] == 5 and len(result["removed"]) == 2
    assert snapshot(root) == {}


def test_symlinks_are_skipped_and_never_followed(job, root: Path, tmp_path: Path):
    outside = tmp_path / "outside"
    target = old(outside / "precious.log", 30, "keep me")
    old(outside / "deep" / "precious.log", 30, "keep me too")
    (root / "link.log").symlink_to(target)
    (root / "linkdir").symlink_to(outside / "deep")
    old(root / "own.log", 30)

    result = run(job, directory=str(root), pattern="**/*.log", older_than_days=1)
    result_dir = run(job, directory=str(root), pattern="linkdir/*.log", older_than_days=1)

    assert result["removed"] == ["own.log"]
    assert {"path": "link.log", "reason": "symlink"} in result["skipped"]
    assert result_dir["removed"] == []
    assert result_dir["skipped"] == [
        {"path": "linkdir/precious.log", "reason": "resolves outside the directory"}
    ]
    assert snapshot(outside) == {
        "deep": "<dir>",
        "deep/precious.log": "keep me too",
        "precious.log": "keep me",
    }
    assert (root / "link.log").is_symlink()


def test_non_regular_files_are_skipped(job, root: Path):
    os.mkfifo(root / "pipe.log")
    os.utime(root / "pipe.log", (0, 0))

    result = run(job, directory=str(root), pattern="*.log", older_than_days=1)

    assert result["count"] == 0
    assert result["skipped"] == [{"path": "pipe.log", "reason": "not a regular file"}]
    assert (root / "pipe.log").exists()


def test_directory_swapped_for_a_symlink_after_listing(job, root: Path, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    old(outside / "victim.log", 30, "keep me")
    old(root / "sub" / "victim.log", 30)
    listed = files._cleanup_candidates

    def list_then_swap(*args):
        found = listed(*args)
        (root / "sub" / "victim.log").unlink()
        (root / "sub").rmdir()
        (root / "sub").symlink_to(outside)
        return found

    monkeypatch.setattr(files, "_cleanup_candidates", list_then_swap)
    with pytest.raises(FileJobError, match=r"could not be deleted; first: sub/victim\.log"):
        run(job, directory=str(root), pattern="**/*.log", older_than_days=1)

    assert snapshot(outside) == {"victim.log": "keep me"}


def test_run_time_recheck_refuses_a_directory_outside(root: Path, tmp_path: Path):
    old(tmp_path / "outside" / "a.log", 30)
    ctx = JobContext(job=NAME)

    with pytest.raises(PathNotAllowedError, match="outside the directories"):
        file_cleanup(
            ctx,
            directory=str(tmp_path / "outside"),
            pattern="*",
            older_than_days=0,
            dry_run=False,
            max_files=10,
        )
    assert (tmp_path / "outside" / "a.log").exists()


def test_missing_directory_fails_clearly(job, root: Path):
    with pytest.raises(NotADirectoryError, match="not an existing directory"):
        run(job, directory=str(root / "nope"), older_than_days=1)


# --- validation ----------------------------------------------------------------------------
def refused(job, params, field):
    with pytest.raises(ParameterError) as caught:
        job.validate(params)
    assert_field_error(caught.value, NAME, field)
    return " ".join(caught.value.by_field()[field])


def test_directory_outside_the_allowlist_is_refused(job, root: Path, tmp_path: Path):
    old(tmp_path / "outside" / "a.log", 30)
    message = refused(
        job, {"directory": str(tmp_path / "outside"), "older_than_days": 1}, "directory"
    )

    assert "outside the directories file jobs may touch" in message
    assert str(tmp_path / "outside") in message  # names the offending path...
    assert str(root) not in message  # ...never the allowed roots
    assert (tmp_path / "outside" / "a.log").exists()


def test_dotdot_and_relative_directories_are_refused(job, root: Path):
    sneaky = f"{root}/../outside"
    assert "outside" in refused(job, {"directory": sneaky, "older_than_days": 1}, "directory")
    relative = refused(job, {"directory": "logs", "older_than_days": 1}, "directory")
    assert "absolute" in relative


def test_symlink_escape_is_refused(job, root: Path, tmp_path: Path):
    (root / "escape").symlink_to(tmp_path / "outside")

    message = refused(job, {"directory": str(root / "escape"), "older_than_days": 1}, "directory")

    assert "once symlinks are resolved" in message


def test_empty_allowlist_refuses_everything(job, root: Path, settings):
    settings.JOBS_FILE_ROOTS = []

    message = refused(job, {"directory": str(root), "older_than_days": 1}, "directory")

    assert "set JOBS_FILE_ROOTS" in message


def test_allowlist_is_read_at_validation_time(job, tmp_path: Path):
    params = {"directory": str(tmp_path), "older_than_days": 1}
    with override_settings(JOBS_FILE_ROOTS=[str(tmp_path)]):
        assert job.validate(params)["directory"] == str(tmp_path)
    with override_settings(JOBS_FILE_ROOTS=[str(tmp_path / "elsewhere")]):
        refused(job, params, "directory")


def test_allowed_root_through_a_symlink(job, tmp_path: Path, settings):
    real = tmp_path / "real"
    old(real / "a.log", 5)
    (tmp_path / "alias").symlink_to(real)
    settings.JOBS_FILE_ROOTS = [str(tmp_path / "alias")]

    result = run(job, directory=str(tmp_path / "alias"), older_than_days=1)

    assert result["removed"] == ["a.log"]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({}, "directory", "required parameter is missing"),
        ({"pattern": "*"}, "older_than_days", "required parameter is missing"),
        ({"older_than_days": -1}, "older_than_days", "greater than or equal to 0"),
        ({"older_than_days": "old"}, "older_than_days", "valid number"),
        ({"older_than_days": "nan"}, "older_than_days", "finite number"),
        ({"older_than_days": 1, "pattern": "../*.log"}, "pattern", "'..'"),
        ({"older_than_days": 1, "pattern": "a/../../b"}, "pattern", "'..'"),
        ({"older_than_days": 1, "pattern": "/etc/*"}, "pattern", "relative"),
        ({"older_than_days": 1, "pattern": ""}, "pattern", "required"),
        ({"older_than_days": 1, "pattern": "x**/y"}, "pattern", "whole path component"),
        ({"older_than_days": 1, "max_files": 0}, "max_files", "greater than or equal to 1"),
        ({"older_than_days": 1, "recursive": True}, "recursive", "unexpected parameter"),
    ],
)
def test_bad_parameters_are_refused(job, root: Path, params, field, message):
    params = {"directory": str(root), **params} if field != "directory" else params
    assert message in refused(job, params, field)
