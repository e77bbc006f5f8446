"""Milvus import jobs: an image store's rows as Parquet files that a Milvus server reads
itself, and the REST API that imports them.

A Milvus server (standalone or distributed, 2.4 or later) imports Parquet files from the
object storage it runs on (the MinIO or S3 bucket of its ``minio.bucketName``) through
import jobs of its REST API on the same port as gRPC (``proxy.http.enabled``, on by
default):

* ``POST /v2/vectordb/jobs/import/create`` with ``{"collectionName", "dbName", "files":
  [["key/of/file.parquet"], ...]}`` answers ``{"code": 0, "data": {"jobId": "..."}}``;
* ``POST /v2/vectordb/jobs/import/get_progress`` with ``{"jobId", "dbName"}`` answers
  ``{"code": 0, "data": {"jobId", "state", "progress", "importedRows", "totalRows",
  "reason", "details": [{"fileName", "state", "importedRows", "totalRows", "reason"}]}}``,
  ``state`` one of ``Pending``, ``Importing``, ``Completed``, ``Failed``;
* ``POST /v2/vectordb/jobs/import/list`` with ``{"collectionName", "dbName"}`` answers
  ``{"code": 0, "data": {"records": [...]}}``.

Errors come back as HTTP 200 with a non-zero ``code`` and a ``message``. Milvus Lite has
no REST API and no import jobs: its gRPC port answers an HTTP/1.1 request with HTTP/2
frames, which :class:`MilvusImportJobs` reports as such.

The columns of an import file are the collection's fields (see
:mod:`~langchain_image_embeddings.vectorstores.milvus._schema`): ``id`` (string),
``vector`` (``list<float32>``, unit length), ``page_content`` (string) and ``metadata`` (the
JSON field, as a JSON string). The collection has no dynamic field, so no ``$meta`` column.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_image_embeddings.errors import MilvusImportError
from langchain_image_embeddings.vectorstores._records import check_vectors, unit_rows
from langchain_image_embeddings.vectorstores.milvus._calls import TIMEOUT_S, call_milvus
from langchain_image_embeddings.vectorstores.milvus._rows import check_sizes

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from langchain_core.documents import Document

__all__ = [
    "IMPORT_API",
    "MAX_FILES_PER_JOB",
    "POLL_S",
    "FileProgress",
    "ImportProgress",
    "MilvusImportJobs",
    "import_schema",
    "import_table",
    "refresh_after_import",
]

#: The path of the import-job REST API on a Milvus server.
IMPORT_API = "/v2/vectordb/jobs/import"
#: Files of one import job (Milvus's default ``dataCoord.import.maxFilesPerImportReq``).
MAX_FILES_PER_JOB = 1024
#: Seconds between two progress requests while a job runs.
POLL_S = 2.0

_DONE = ("Completed", "Failed")
_LITE_HINT = (
    "Milvus Lite (and any server without Milvus's HTTP API) has no import jobs: load the "
    "shards without --milvus-import (`imgemb load SHARDS --store ...`), or run Milvus "
    "standalone with its MinIO bucket"
)


def import_schema() -> pa.Schema:
    """The Arrow schema of an import file of this store's collection.

    Example:
        >>> import_schema().names
        ['id', 'vector', 'page_content', 'metadata']
    """
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("vector", pa.list_(pa.float32())),
            ("page_content", pa.string()),
            ("metadata", pa.string()),
        ]
    )


def import_table(
    ids: Sequence[str], vectors: np.ndarray, documents: Sequence[Document], dim: int | None
) -> pa.Table:
    """The rows of an import file: the same checks and the same values as the store's
    ``upsert`` (ids and texts within their ``VARCHAR`` sizes, vectors ``(n, dim)``, finite,
    non-zero, scaled to unit length; metadata as JSON text).

    Raises:
        StoreError: Naming the first id, text or vector the store would refuse.

    Example:
        >>> import numpy as np
        >>> from langchain_core.documents import Document
        >>> table = import_table(["a"], np.array([[3.0, 4.0]]), [Document("a.jpg")], 2)
        >>> table.column("vector").to_pylist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    import numpy as np
    import pyarrow as pa

    if len(ids) != len(vectors) or len(ids) != len(documents):
        raise ValueError("ids, vectors and documents must have the same length")
    check_sizes(ids, documents)
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    check_vectors(ids, matrix, dim)
    unit = unit_rows(matrix)
    width = unit.shape[1] if unit.ndim == 2 else 0
    offsets = pa.array(np.arange(0, (len(ids) + 1) * width, width, dtype=np.int32), pa.int32())
    column = pa.ListArray.from_arrays(offsets, pa.array(unit.reshape(-1), pa.float32()))
    return pa.Table.from_arrays(
        [
            pa.array([str(i) for i in ids], pa.string()),
            column,
            pa.array([d.page_content for d in documents], pa.string()),
            pa.array([json.dumps(dict(d.metadata), default=str) for d in documents], pa.string()),
        ],
        schema=import_schema(),
    )


@dataclass(frozen=True)
class FileProgress:
    """One file of an import job, as the server reports it.

    Example:
        >>> FileProgress("imports/part-000000.parquet", "Completed", 10, 10, "").name
        'imports/part-000000.parquet'
    """

    name: str
    state: str
    imported_rows: int
    total_rows: int
    reason: str


@dataclass(frozen=True)
class ImportProgress:
    """An import job's state (``Pending``, ``Importing``, ``Completed``, ``Failed``).

    Example:
        >>> p = ImportProgress("7", "Completed", 100, 10, 10, "", ())
        >>> p.done, p.failed
        (True, False)
    """

    job_id: str
    state: str
    progress: int
    imported_rows: int
    total_rows: int
    reason: str
    files: tuple[FileProgress, ...]

    @property
    def done(self) -> bool:
        """Whether the job has ended (completed or failed)."""
        return self.state in _DONE

    @property
    def failed(self) -> bool:
        """Whether the job failed."""
        return self.state == "Failed"

    @classmethod
    def from_response(cls, job_id: str, data: Mapping[str, Any]) -> ImportProgress:
        """The progress in a ``get_progress`` answer's ``data``."""
        files = tuple(
            FileProgress(
                str(d.get("fileName", "")),
                str(d.get("state", "")),
                int(d.get("importedRows") or 0),
                int(d.get("totalRows") or 0),
                str(d.get("reason") or ""),
            )
            for d in data.get("details") or ()
        )
        return cls(
            str(data.get("jobId") or job_id),
            str(data.get("state", "")),
            int(data.get("progress") or 0),
            int(data.get("importedRows") or 0),
            int(data.get("totalRows") or 0),
            str(data.get("reason") or ""),
            files,
        )


class MilvusImportJobs:
    """A client of a Milvus server's import-job REST API (see the module docs).

    Every request has a timeout; every failure is a
    :class:`~langchain_image_embeddings.errors.MilvusImportError` naming the server, the job
    and, where the server names one, the failing file with its reason.

    Example:
        .. code-block:: python

            jobs = MilvusImportJobs("http://127.0.0.1:19530", token="root:Milvus")
            job = jobs.create("photos", ["imgemb-import/part-000000.parquet"])
            progress = jobs.wait(job, timeout_s=3600)
            progress.imported_rows
    """

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        db_name: str = "",
        timeout: float = TIMEOUT_S,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the Milvus REST URL must be http(s)://HOST:PORT, not {url!r}")
        self.url = url.rstrip("/")
        self.token = token
        self.db_name = db_name
        #: Seconds one request may take.
        self.timeout = timeout

    def _post(self, action: str, body: dict[str, Any], job_id: str | None = None) -> Any:
        """POST ``body`` to ``IMPORT_API/action``; the answer's ``data``."""
        endpoint = f"{self.url}{IMPORT_API}/{action}"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.db_name:
            body = {"dbName": self.db_name, **body}
        request = urllib.request.Request(
            endpoint, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        job = f"import job {job_id}" if job_id else "the import request"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            hint = f" ({_LITE_HINT})" if exc.code == 404 else ""
            raise MilvusImportError(
                f"{job} at {endpoint}: HTTP {exc.code} {detail!r}{hint}",
                job_id=job_id,
                reason=f"HTTP {exc.code}",
            ) from exc
        except http.client.HTTPException as exc:  # HTTP/2 frames from a gRPC-only port
            raise MilvusImportError(
                f"{job} at {endpoint}: the server did not answer in HTTP/1.1 "
                f"({type(exc).__name__}): {_LITE_HINT}",
                job_id=job_id,
                reason="no REST API",
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            timed_out = isinstance(reason, (TimeoutError, socket.timeout))
            what = f"no answer within {self.timeout:g} s" if timed_out else str(reason)
            # A gRPC-only port may close on the request before its HTTP/2 answer is read,
            # which the client sees as a reset rather than as a bad status line.
            hint = f" ({_LITE_HINT})" if isinstance(reason, ConnectionResetError) else ""
            raise MilvusImportError(
                f"{job} at {endpoint}: cannot reach the Milvus REST API: {what}{hint}",
                job_id=job_id,
                reason=what,
            ) from exc
        try:
            answer = json.loads(raw)
            code = answer.get("code", 0)
        except (ValueError, AttributeError) as exc:
            raise MilvusImportError(
                f"{job} at {endpoint}: the answer is not Milvus REST JSON ({raw[:80]!r}): "
                f"{_LITE_HINT}",
                job_id=job_id,
                reason="not JSON",
            ) from exc
        if code not in (0, 200):
            message = str(answer.get("message") or answer)
            raise MilvusImportError(
                f"{job} at {endpoint}: Milvus refused it (code {code}): {message}",
                job_id=job_id,
                reason=message,
            )
        return answer.get("data")

    def create(
        self, collection_name: str, files: Sequence[str], *, partition_name: str = ""
    ) -> str:
        """Create a job that imports ``files`` (keys in the server's bucket, one Parquet file
        each) into ``collection_name``; its id.

        Raises:
            MilvusImportError: The server refused it (the message gives its reason) or could
                not be reached.
        """
        if not files:
            raise ValueError("an import job needs at least one file")
        if len(files) > MAX_FILES_PER_JOB:
            raise ValueError(f"at most {MAX_FILES_PER_JOB} files per import job, not {len(files)}")
        body: dict[str, Any] = {
            "collectionName": collection_name,
            "files": [[str(f)] for f in files],
        }
        if partition_name:
            body["partitionName"] = partition_name
        data = self._post("create", body)
        job_id = (data or {}).get("jobId") if isinstance(data, Mapping) else None
        if not job_id:
            raise MilvusImportError(
                f"Milvus created no import job for {collection_name!r} (answer: {data!r})",
                reason="no job id",
            )
        return str(job_id)

    def progress(self, job_id: str) -> ImportProgress:
        """The job's state and row counts.

        Raises:
            MilvusImportError: The server refused the request or could not be reached.
        """
        data = self._post("get_progress", {"jobId": job_id}, job_id)
        return ImportProgress.from_response(job_id, data if isinstance(data, Mapping) else {})

    def list(self, collection_name: str = "") -> list[dict[str, Any]]:
        """The import jobs the server knows (of ``collection_name``, if given).

        Also the cheapest check that the server has import jobs at all.

        Raises:
            MilvusImportError: The server has no import API or could not be reached.
        """
        body = {"collectionName": collection_name} if collection_name else {}
        data = self._post("list", body)
        records = data.get("records") if isinstance(data, Mapping) else None
        return [dict(r) for r in records or ()]

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        poll_s: float = POLL_S,
        on_progress: Callable[[ImportProgress], None] | None = None,
    ) -> ImportProgress:
        """Poll the job until it ends; its final progress.

        Args:
            job_id: The job.
            timeout_s: Give up after this many seconds (``None``: wait as long as it runs).
            poll_s: Seconds between two progress requests.
            on_progress: Called with every progress read.

        Raises:
            MilvusImportError: The job failed (naming the first failing file and the server's
                reason), or did not end within ``timeout_s`` (it goes on on the server).
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            state = self.progress(job_id)
            if on_progress is not None:
                on_progress(state)
            if state.failed:
                bad = next((f for f in state.files if f.state == "Failed" or f.reason), None)
                reason = state.reason or (bad.reason if bad else "") or "no reason given"
                where = f", file {bad.name!r}" if bad else ""
                raise MilvusImportError(
                    f"Milvus import job {job_id} failed{where}: {reason} "
                    f"({state.imported_rows} of {state.total_rows} rows imported; a failed "
                    "job leaves nothing of itself in the collection)",
                    job_id=job_id,
                    file=bad.name if bad else None,
                    reason=reason,
                )
            if state.done:
                return state
            if deadline is not None and time.monotonic() >= deadline:
                raise MilvusImportError(
                    f"Milvus import job {job_id} did not finish within {timeout_s:g} s "
                    f"(state {state.state}, {state.progress}%); it goes on on the server: "
                    f"follow it with POST {self.url}{IMPORT_API}/get_progress",
                    job_id=job_id,
                    reason="timeout",
                )
            left = poll_s if deadline is None else deadline - time.monotonic()
            time.sleep(max(0.0, min(poll_s, left)))


def refresh_after_import(client: Any, collection_name: str, *, timeout: float = TIMEOUT_S) -> None:
    """Flush the collection and load it again, so searches see the imported segments
    through their index (an import builds sealed, indexed segments; the load makes sure the
    query nodes serve them)."""
    where = f"Milvus collection {collection_name!r}"
    call_milvus(f"flush ({where})", client.flush, collection_name, timeout=timeout)
    call_milvus(f"load ({where})", client.load_collection, collection_name, timeout=timeout)
