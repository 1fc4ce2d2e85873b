"""Uploads: files stream into a fresh directory under API_UPLOAD_ROOT and one run of the chosen
job is queued over them; a refused upload leaves no file and queues nothing."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from scheduler.runs.models import JobRun, RunRequest
from tests.api.conftest import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload_root(settings, tmp_path):
    root = tmp_path / "files"
    (root / "uploads").mkdir(parents=True)
    settings.JOBS_FILE_ROOTS = [str(root)]
    settings.API_UPLOAD_ROOT = str(root / "uploads")
    return root / "uploads"


def send(caller, job: str, files: list[tuple[str, bytes]], **form):
    data = {"files": [SimpleUploadedFile(name, content) for name, content in files]}
    data.update({k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in form.items()})
    return caller.client.post(f"/api/uploads/{job}", data, **caller._headers(None))


def left_behind(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_files_land_in_a_fresh_directory_and_the_job_runs_over_it(operator, upload_root):
    files = [(f"photo-{i:03}.jpg", f"image {i}".encode()) for i in range(30)]
    response = send(
        operator,
        "builtin.bulk_rename",
        files,
        params={"match": r"photo-(\d+)\.jpg", "replacement": r"img_\1.jpg"},
        path_param="directory",
    )
    assert response.status_code == 202, response.content
    run = JobRun.objects.get(pk=response.json()["id"])
    folder = run.params["directory"]
    assert folder.startswith(str(upload_root))
    assert sorted(p.name for p in (upload_root / folder.rsplit("/", 1)[1]).iterdir()) == sorted(
        name for name, _ in files
    )
    assert (upload_root / folder.rsplit("/", 1)[1] / "photo-007.jpg").read_bytes() == b"image 7"
    assert not list((upload_root / ".incoming").iterdir())
    assert response["Location"].endswith(f"/api/runs/{run.pk}")


def test_one_archive_is_named_by_file_param(operator, upload_root):
    response = send(
        operator,
        "builtin.bulk_rename",
        [("batch.zip", b"PK...")],
        params={"match": "x", "replacement": "y"},
        file_param="note",
    )
    # bulk_rename has no "note" parameter: the job's own schema refuses it, nothing stays.
    assert response.status_code == 422
    assert "note" in error_of(response)["fields"]
    assert left_behind(upload_root) == [] and not JobRun.objects.exists()


@pytest.mark.parametrize(
    ("setting", "value", "files"),
    [
        ("API_UPLOAD_MAX_FILES", 3, [(f"f{i}", b"x") for i in range(4)]),
        ("API_UPLOAD_MAX_FILE_BYTES", 1000, [("big", b"x" * 5000)]),
        ("API_UPLOAD_MAX_BYTES", 3000, [("a", b"x" * 2000), ("b", b"x" * 2000)]),
    ],
)
def test_caps_are_413_and_leave_nothing(operator, upload_root, settings, setting, value, files):
    setattr(settings, setting, value)
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1000
    response = send(operator, "builtin.bulk_rename", files, params={"match": "a"})
    assert response.status_code == 413, response.content
    assert error_of(response)["code"] == "upload_too_large"
    assert left_behind(upload_root) == [] and not JobRun.objects.exists()
    assert not RunRequest.objects.exists()


@pytest.mark.parametrize("name", [".hidden", "...", "a\x01b"])
def test_bad_file_names_are_refused(operator, upload_root, name):
    response = send(operator, "builtin.bulk_rename", [(name, b"x")], params={"match": "a"})
    assert response.status_code == 422, response.content
    assert left_behind(upload_root) == [] and not JobRun.objects.exists()


def test_two_files_of_one_name_are_refused(operator, upload_root):
    response = send(operator, "builtin.bulk_rename", [("a.txt", b"1"), ("a.txt", b"2")])
    assert response.status_code == 422 and "two files" in error_of(response)["message"]
    assert left_behind(upload_root) == []


def test_params_must_be_a_json_object(operator, upload_root):
    response = send(operator, "builtin.bulk_rename", [("a.txt", b"1")], params="[1, 2]")
    assert response.status_code == 422 and "params" in error_of(response)["fields"]
    assert left_behind(upload_root) == []


def test_no_files_unknown_job_and_no_permission(operator, viewer, upload_root):
    empty = operator.client.post(
        "/api/uploads/builtin.bulk_rename", {"params": "{}"}, **operator._headers(None)
    )
    assert empty.status_code == 422
    unknown = send(operator, "tests.nope", [("a.txt", b"1")])
    assert unknown.status_code == 404
    assert send(viewer, "builtin.bulk_rename", [("a.txt", b"1")]).status_code == 403
    assert left_behind(upload_root) == [] and not JobRun.objects.exists()


def test_uploads_are_off_without_a_root_inside_the_file_roots(operator, settings, tmp_path):
    settings.API_UPLOAD_ROOT = ""
    assert send(operator, "builtin.bulk_rename", [("a", b"1")]).status_code == 503
    settings.JOBS_FILE_ROOTS = [str(tmp_path / "elsewhere")]
    settings.API_UPLOAD_ROOT = str(tmp_path / "uploads")
    response = send(operator, "builtin.bulk_rename", [("a", b"1")])
    assert response.status_code == 503 and error_of(response)["code"] == "uploads_off"


def test_a_json_body_is_refused(operator, upload_root):
    response = operator.post("/api/uploads/builtin.bulk_rename", {"files": []})
    assert response.status_code == 422
    assert left_behind(upload_root) == []


def test_a_path_in_a_file_name_never_leaves_the_upload(operator, upload_root):
    boundary = "BOUNDARY"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="files"; filename="../../escape.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nowned\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="params"\r\n\r\n{"match": "x"}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    response = operator.client.post(
        "/api/uploads/builtin.bulk_rename",
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
        **operator._headers(None),
    )
    outside = [p for p in upload_root.parent.parent.rglob("escape.txt")]
    assert all(p.parent.parent == upload_root for p in outside), outside
    if response.status_code == 202:
        folder = JobRun.objects.get(pk=response.json()["id"]).params["directory"]
        assert [p.name for p in outside] == ["escape.txt"] and str(outside[0].parent) == folder
    else:
        assert response.status_code == 422 and outside == []
