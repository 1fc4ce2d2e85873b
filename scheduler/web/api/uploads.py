"""Upload many files (or one archive) and run a catalog job over them, in one request.

The files stream to disk as they arrive (never whole in memory), into a fresh directory
under ``API_UPLOAD_ROOT`` (which must lie inside ``JOBS_FILE_ROOTS``, where file jobs may
work). Caps on the number of files, each file's size and the total are enforced while
receiving, not trusted from headers. The job is then triggered with the upload's directory in
the parameter named by ``path_param`` (and, for one file, its path in ``file_param``).
Anything refused (too large, bad names, invalid parameters) leaves no file behind and queues
nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousMultipartForm, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import Router
from ninja.responses import Status

from jobs_catalog.paths import PathNotAllowedError, resolve_allowed
from scheduler.internal_tasks import is_internal
from scheduler.runs import trigger as triggers
from scheduler.web.api import storable
from scheduler.web.api.auth import require
from scheduler.web.api.errors import ApiError
from scheduler.web.api.jobs import refusal
from scheduler.web.api.schemas import ErrorOut, RunOut
from scheduler.web.api.serialize import occurrence, run_out, run_url
from scheduler.web.api.throttle import UserRateThrottle

router = Router(tags=["uploads"])
#: Where a request's files wait until all have arrived.
STAGING = ".incoming"
_BAD_NAME_CHARS = frozenset("/\\\x00")


class TooLarge(Exception):  # noqa: N818 - the request's fault, answered 413
    pass


class BadUpload(Exception):  # noqa: N818 - answered 422
    pass


class _StreamedFile(UploadedFile):
    """A file already written to its place in the staging directory."""

    def __init__(self, path: Path, name: str, size: int, content_type: str | None):
        super().__init__(None, name, content_type, size)
        self.path = path

    def close(self) -> None:  # written and closed by the handler: nothing is open
        pass


class CappedUploadHandler(FileUploadHandler):
    """Writes each uploaded file straight into ``staging``, refusing at once a file, a count
    or a total over the caps."""

    def __init__(self, staging: Path, request: HttpRequest | None = None):
        super().__init__(request)
        self.staging = staging
        self.total = 0
        self.count = 0
        self.names: set[str] = set()
        self._out: Any = None
        self._size = 0
        self._path: Path | None = None

    def new_file(self, field_name: str, file_name: str, content_type: str, *args: Any, **kw: Any):
        super().new_file(field_name, file_name, content_type, *args, **kw)
        name = clean_name(file_name)
        if name in self.names:
            raise BadUpload(f"two files are named {name!r}")
        self.names.add(name)
        self.count += 1
        if self.count > settings.API_UPLOAD_MAX_FILES:
            raise TooLarge(f"at most {settings.API_UPLOAD_MAX_FILES} files per upload")
        self._path = self.staging / name
        self._out = open(self._path, "xb")  # noqa: SIM115 - closed in file_complete
        self._size = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._size += len(raw_data)
        self.total += len(raw_data)
        if self._size > settings.API_UPLOAD_MAX_FILE_BYTES:
            raise TooLarge(f"a file may hold at most {settings.API_UPLOAD_MAX_FILE_BYTES} bytes")
        if self.total > settings.API_UPLOAD_MAX_BYTES:
            raise TooLarge(f"an upload may hold at most {settings.API_UPLOAD_MAX_BYTES} bytes")
        self._out.write(raw_data)

    def file_complete(self, file_size: int) -> UploadedFile:
        self._out.close()
        self._out = None
        assert self._path is not None
        return _StreamedFile(self._path, self._path.name, self._size, self.content_type)

    def upload_interrupted(self) -> None:
        if self._out is not None:
            self._out.close()

    def close(self) -> None:
        self.upload_interrupted()


def clean_name(name: str) -> str:
    """A file's own name as sent, refused when it could leave its directory or hide."""
    name = (name or "").strip()
    if (
        not name
        or name in {".", ".."}
        or name.startswith(".")
        or any(c in _BAD_NAME_CHARS or ord(c) < 32 for c in name)
        or len(name) > 255
    ):
        raise BadUpload(f"file name {name!r} is not allowed (a plain name, not hidden)")
    return name


def upload_root() -> Path:
    root = str(getattr(settings, "API_UPLOAD_ROOT", "") or "").strip()
    if not root:
        raise ApiError(503, "uploads_off", "Uploads are not enabled here (set API_UPLOAD_ROOT).")
    try:
        resolved, _allowed = resolve_allowed(root)
    except PathNotAllowedError as exc:
        raise ApiError(503, "uploads_off", f"API_UPLOAD_ROOT is not usable: {exc}") from None
    return resolved


@router.post(
    "/uploads/{job}",
    response={
        202: RunOut,
        404: ErrorOut,
        409: ErrorOut,
        413: ErrorOut,
        422: ErrorOut,
        429: ErrorOut,
        503: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
    },
    throttle=[UserRateThrottle()],
    summary="Upload files and run a job over them",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "minItems": 1,
                            },
                            "params": {
                                "type": "string",
                                "description": "The job's other parameters, a JSON object.",
                            },
                            "path_param": {
                                "type": "string",
                                "description": "The parameter that receives the upload's "
                                "directory (default: directory).",
                            },
                            "file_param": {
                                "type": "string",
                                "description": "With one file: the parameter that receives "
                                "its path (e.g. an archive to extract).",
                            },
                            "callback_url": {"type": "string"},
                        },
                    }
                }
            },
        }
    },
)
def upload(request: HttpRequest, response: HttpResponse, job: str) -> Status:
    require(request, triggers.TRIGGER_PERMISSION)
    if is_internal(job):
        raise ApiError(404, "unknown_job", f"There is no job {job!r} in the catalog.")
    root = upload_root()
    batch = uuid.uuid4().hex
    staging = root / STAGING / batch
    staging.mkdir(parents=True)
    try:
        run = _receive_and_trigger(request, job, root, staging, batch)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    latest, attempts = occurrence(run.pk)
    response["Location"] = run_url(request, run.first_attempt_id)
    return Status(202, run_out(request, latest, attempts=attempts))


def _receive_and_trigger(
    request: HttpRequest, job: str, root: Path, staging: Path, batch: str
) -> Any:
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(422, "invalid_upload", "Send the files as multipart/form-data.")
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.API_UPLOAD_MAX_BYTES + settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise ApiError(413, "upload_too_large", "The upload is larger than API_UPLOAD_MAX_BYTES.")
    request.upload_handlers = [CappedUploadHandler(staging, request)]
    try:
        files = request.FILES.getlist("files")
        form = request.POST
    except (TooLarge, TooManyFilesSent, TooManyFieldsSent) as exc:
        raise ApiError(413, "upload_too_large", f"The upload is too large: {exc}.") from None
    except (BadUpload, StopUpload) as exc:
        raise ApiError(422, "invalid_upload", str(exc), {"files": [str(exc)]}) from None
    except (MultiPartParserError, SuspiciousMultipartForm) as exc:
        raise ApiError(422, "invalid_upload", f"The multipart body is malformed: {exc}") from None
    if not files:
        raise ApiError(422, "invalid_upload", "No files were sent.", {"files": ["required"]})
    params = _params(form.get("params"))
    path_param = (form.get("path_param") or "directory").strip()
    file_param = (form.get("file_param") or "").strip()
    callback_url = (form.get("callback_url") or "").strip()
    storable.refuse(
        {
            "params": params,
            "path_param": path_param,
            "file_param": file_param,
            "callback_url": callback_url,
        }
    )
    final = root / batch
    params[path_param] = str(final)
    if file_param:
        if len(files) != 1:
            raise ApiError(
                422, "invalid_upload", "file_param needs exactly one file.", {"files": ["one"]}
            )
        params[file_param] = str(final / files[0].name)
    os.replace(staging, final)
    try:
        return triggers.trigger(job, params, request.user, callback_url=callback_url)
    except Exception as exc:
        shutil.rmtree(final, ignore_errors=True)
        raise refusal(job, exc) from None


def _params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ApiError(
            422, "invalid_upload", "params must be a JSON object.", {"params": ["not an object"]}
        )
    return value
