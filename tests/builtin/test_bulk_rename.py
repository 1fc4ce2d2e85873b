from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobs_catalog import JobCancelled, JobContext
from jobs_catalog.builtin import files
from jobs_catalog.builtin.files import FileJobError, Rename
from jobs_catalog.errors import ParameterError
from jobs_catalog.registry import registry
from tests.builtin.conftest import assert_field_error, snapshot
from tests.builtin.controls import Control

NAME = "builtin.bulk_rename"


@pytest.fixture
def job():
    return registry.get(NAME)


def run(job, **params):
    return job.call(params, JobContext(job=NAME))


def make(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_text(name)


def test_regex_mode(job, root: Path):
    make(root, "IMG_001.jpeg", "IMG_002.jpeg", "notes.txt")

    result = run(job, directory=str(root), match=r"^IMG_(\d+)\.jpeg$", replacement=r"photo-\1.jpg")

    assert result["count"] == 2 and result["dry_run"] is False
    assert result["renamed"] == [
        {"old": "IMG_001.jpeg", "new": "photo-001.jpg"},
        {"old": "IMG_002.jpeg", "new": "photo-002.jpg"},
    ]
    # Contents follow their files.
    assert snapshot(root) == {
        "notes.txt": "notes.txt",
        "photo-001.jpg": "IMG_001.jpeg",
        "photo-002.jpg": "IMG_002.jpeg",
    }


def test_template_mode(job, root: Path, settings):
    settings.TIME_ZONE = "UTC"
    make(root, "report-b.csv", "report-a.csv", "other.csv")
    stamp = datetime(2024, 3, 5, 12, tzinfo=UTC).timestamp()
    for name in ("report-a.csv", "report-b.csv"):
        os.utime(root / name, (stamp, stamp))

    result = run(
        job,
        directory=str(root),
        mode="template",
        match=r"^report-(?P<part>\w+)",
        replacement="{mtime:%Y%m%d}-{index:02d}-{part}{suffix}",
    )

    assert [r["new"] for r in result["renamed"]] == ["20240305-01-a.csv", "20240305-02-b.csv"]
    assert sorted(snapshot(root)) == ["20240305-01-a.csv", "20240305-02-b.csv", "other.csv"]


def test_chain_works(job, root: Path):
    make(root, "log.0", "log.1")

    result = run(
        job, directory=str(root), mode="template", match=r"^log\.\d$", replacement="log.{index}"
    )

    assert result["renamed"] == [{"old": "log.0", "new": "log.1"}, {"old": "log.1", "new": "log.2"}]
    assert snapshot(root) == {"log.1": "log.0", "log.2": "log.1"}


def test_swap_works(root: Path):
    make(root, "a", "b")
    plan = [Rename("a", "b"), Rename("b", "a")]

    files._check_plan(plan, {"a", "b"}, root)
    files._apply(root, plan)

    assert snapshot(root) == {"a": "b", "b": "a"}


def test_dry_run_renames_nothing(job, root: Path):
    make(root, "a.txt")

    result = run(job, directory=str(root), match=r"\.txt$", replacement=".md", dry_run=True)

    assert result["renamed"] == [{"old": "a.txt", "new": "a.md"}] and result["dry_run"] is True
    assert snapshot(root) == {"a.txt": "a.txt"}


def test_unchanged_names_subdirectories_and_symlinks_are_left_alone(job, root: Path):
    make(root, "a.txt", "keep.md")
    (root / "dir.txt").mkdir()
    (root / "link.txt").symlink_to(root / "keep.md")

    result = run(job, directory=str(root), match=r"\.txt$", replacement=".text")

    assert result["renamed"] == [{"old": "a.txt", "new": "a.text"}]
    assert sorted(snapshot(root)) == ["a.text", "dir.txt", "keep.md", "link.txt"]


@pytest.mark.parametrize(
    ("names", "match", "replacement", "problem"),
    [
        (["a1.txt", "a2.txt"], r"\d", "", "'a1.txt' and 'a2.txt' would both become 'a.txt'"),
        (["a.txt", "b.txt"], r"^b", "a", "'b.txt' would become 'a.txt', which already exists"),
        (["a.txt", "b.txt"], r"^b\.txt$", "sub", "'sub', which already exists"),
        (["a.txt"], r"^a", "x/", "invalid name 'x/.txt'"),
        (["a.txt"], r".*", "", "invalid name ''"),
        (["a.txt"], r"^a\.txt$", "..", "invalid name '..'"),
    ],
)
def test_collisions_rename_nothing(job, root: Path, names, match, replacement, problem):
    make(root, *names)
    (root / "sub").mkdir()
    before = snapshot(root)

    with pytest.raises(FileJobError) as caught:
        run(job, directory=str(root), match=match, replacement=replacement)

    assert problem in str(caught.value) and "nothing renamed" in str(caught.value)
    assert snapshot(root) == before


def test_failure_midway_undoes_everything(job, root: Path, monkeypatch):
    make(root, "a.txt", "b.txt", "c.txt")
    before = snapshot(root)
    real_rename = os.rename
    calls = []

    def flaky_rename(src, dst, **kwargs):
        calls.append((src, dst))
        if len(calls) == 5:  # phase two, second file
            raise PermissionError(13, "Permission denied", dst)
        real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", flaky_rename)
    with pytest.raises(FileJobError, match="were undone") as caught:
        run(job, directory=str(root), match=r"\.txt$", replacement=".md")

    assert "PermissionError" in str(caught.value)
    assert len(calls) == 5 + 4  # four completed renames put back
    assert snapshot(root) == before  # no temporary names left either


def test_progress_counts_files_renamed(job, root: Path, unthrottled):
    make(root, "a.txt", "b.txt", "c.txt")
    control = Control()

    job.call(
        {"directory": str(root), "match": r"\.txt$", "replacement": ".md"},
        JobContext(job=NAME, control=control),
    )

    # Three files: three moves aside, then three to their new names.
    assert [(p.done, p.total) for p in control.reports] == [(0, 3)] * 3 + [(1, 3), (2, 3), (3, 3)]
    assert control.reports[-1].message == "renamed c.md"
    assert sorted(os.listdir(root)) == ["a.md", "b.md", "c.md"]


@pytest.mark.parametrize("after", [1, 4])  # in the first phase; in the second
def test_cancelled_midway_undoes_everything(job, root: Path, unthrottled, after: int):
    make(root, "a.txt", "b.txt", "c.txt")
    before = snapshot(root)
    control = Control(cancel_when=lambda c: len(c.reports) >= after)

    with pytest.raises(JobCancelled) as caught:
        job.call(
            {"directory": str(root), "match": r"\.txt$", "replacement": ".md"},
            JobContext(job=NAME, control=control),
        )

    assert f"cancelled; the {after} renames already made were undone" in str(caught.value)
    assert len(control.reports) == after  # it stopped at the first look after the cancel
    assert snapshot(root) == before  # no temporary names left either


def test_target_appearing_after_planning_is_not_overwritten(job, root: Path, monkeypatch):
    make(root, "a.txt")
    planned = files.plan_renames

    def plan_then_interfere(*args):
        plan = planned(*args)
        (root / "a.md").write_text("newcomer")
        return plan

    monkeypatch.setattr(files, "plan_renames", plan_then_interfere)
    with pytest.raises(FileJobError, match="appeared since the renames were planned"):
        run(job, directory=str(root), match=r"\.txt$", replacement=".md")

    assert snapshot(root) == {"a.md": "newcomer", "a.txt": "a.txt"}


# --- validation ----------------------------------------------------------------------------
def refused(job, params, field):
    with pytest.raises(ParameterError) as caught:
        job.validate(params)
    assert_field_error(caught.value, NAME, field)
    return " ".join(caught.value.by_field()[field])


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"replacement": "x"}, "match", "required parameter is missing"),
        ({"match": "a"}, "replacement", "required parameter is missing"),
        ({"match": "(unclosed", "replacement": "x"}, "match", "not a valid regular expression"),
        ({"match": "(a)", "replacement": r"\2"}, "replacement", "invalid group reference"),
        ({"match": "a", "replacement": r"\g<nope>"}, "replacement", "unknown group name"),
        ({"match": "a", "replacement": "x", "mode": "glob"}, "mode", "'regex' or 'template'"),
        ({"match": "a", "replacement": "{size}", "mode": "template"}, "replacement", "{stem}"),
        ({"match": "a", "replacement": "{}", "mode": "template"}, "replacement", "named"),
        ({"match": "a", "replacement": "{stem.upper}", "mode": "template"}, "replacement", "named"),
        ({"match": "a", "replacement": "{index:%Y}", "mode": "template"}, "replacement", "valid"),
        ({"match": "a", "replacement": "{stem", "mode": "template"}, "replacement", "valid"),
        ({"match": "(?P<stem>a)", "replacement": "x", "mode": "template"}, "replacement", "clash"),
        ({"match": "a", "replacement": "x", "dry_run": "maybe"}, "dry_run", "boolean"),
        ({"match": "a", "replacement": "x", "recursive": True}, "recursive", "unexpected"),
    ],
)
def test_bad_parameters_are_refused(job, root: Path, params, field, message):
    assert message in refused(job, {"directory": str(root), **params}, field)


def test_directory_outside_the_allowlist_is_refused(job, root: Path, tmp_path: Path):
    make(tmp_path / "outside", "a.txt")
    (root / "escape").symlink_to(tmp_path / "outside")

    for directory in (tmp_path / "outside", root / "escape"):
        params = {"directory": str(directory), "match": "a", "replacement": "b"}
        assert "outside the directories" in refused(job, params, "directory")
    assert snapshot(tmp_path / "outside") == {"a.txt": "a.txt"}
