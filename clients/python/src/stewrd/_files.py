"""``client.files``: upload, list, read, download and delete files.

Uploads stream from a path or a binary stream (httpx reads it in chunks while
sending the multipart body), downloads stream to a writable binary stream
chunk by chunk, so neither holds a whole file in memory. A download cut off
mid-body is resumed with ``Range`` from the byte it reached.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from typing import IO, Any, Dict, Optional, Tuple, cast

from ._errors import APIConnectionError
from ._retry import TRANSPORT_ERRORS, backoff
from ._shared import FileInput, FileOutput, compact, resume_range, seg, upload_source
from ._transport import AsyncTransport, Call, SyncTransport
from .types import DeletedOut, FileList, FileOut, Purpose

CHUNK_SIZE = 64 * 1024


def _upload_call(
    file: FileInput, filename: Optional[str], purpose: Optional[str], content_type: Optional[str]
) -> Tuple[Call, Optional[IO[bytes]]]:
    factory, opened = upload_source(file, filename, content_type)
    return Call("POST", "/v1/files", files=factory, data=compact({"purpose": purpose})), opened


def _list_params(
    purpose: Optional[str], session_id: Optional[str], limit: Optional[int], after: Optional[str]
) -> Dict[str, Any]:
    return {"purpose": purpose, "session_id": session_id, "limit": limit, "after": after}


class _Download:
    """One download's progress across attempts."""

    def __init__(self, file_id: str, dest: FileOutput, range_: Optional[str]) -> None:
        self.path = f"/v1/files/{seg(file_id)}/content"
        self.range = range_
        self.written = 0
        self._skip = 0
        self._dest = dest
        self._opened: Optional[IO[bytes]] = None
        self.out: Optional[IO[bytes]] = None

    def call(self) -> Call:
        headers = {"Range": self.range} if self.range else resume_range(self.written)
        return Call("GET", self.path, headers=headers)

    def resumable(self) -> bool:
        # A caller's own Range is not resumed (its offsets are the caller's).
        return self.range is None

    def begin(self, status: int) -> None:
        # A path is opened only once the server has answered, so a failed
        # download leaves no empty file behind.
        if self.out is None:
            if isinstance(self._dest, (str, os.PathLike)):
                self.out = self._opened = open(self._dest, "wb")
            else:
                self.out = self._dest
        # A 200 to a resumed request (Range ignored) starts from byte 0 again.
        self._skip = self.written if (self.written and status == 200) else 0

    def write(self, chunk: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(chunk))
            chunk, self._skip = chunk[dropped:], self._skip - dropped
        if chunk:
            assert self.out is not None
            self.out.write(chunk)
            self.written += len(chunk)

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()


def _cut(file_id: str, exc: BaseException) -> APIConnectionError:
    return APIConnectionError(
        f"download of {file_id} was cut off ({type(exc).__name__}: {exc})", type="connection_error"
    )


class Files:
    """The project's files (``/v1/files``)."""

    def __init__(self, transport: SyncTransport) -> None:
        self._t = transport

    def upload(
        self,
        file: FileInput,
        *,
        filename: Optional[str] = None,
        purpose: Optional[Purpose] = None,
        content_type: Optional[str] = None,
    ) -> FileOut:
        """Uploads a file from a path, bytes, or a binary stream (read from its
        current position). ``filename`` defaults to the path's or stream's
        name. The server sniffs the real content type itself."""
        call, opened = _upload_call(file, filename, purpose, content_type)
        try:
            return cast(FileOut, self._t.json(call))
        finally:
            if opened is not None:
                opened.close()

    def list(
        self,
        *,
        purpose: Optional[Purpose] = None,
        session_id: Optional[str] = None,
        limit: Optional[int] = None,
        after: Optional[str] = None,
    ) -> FileList:
        """Newest first; pass ``next_cursor`` as ``after`` for the next page."""
        call = Call("GET", "/v1/files", params=_list_params(purpose, session_id, limit, after))
        return cast(FileList, self._t.json(call))

    def get(self, file_id: str) -> FileOut:
        """A file's metadata."""
        return cast(FileOut, self._t.json(Call("GET", f"/v1/files/{seg(file_id)}")))

    def download(self, file_id: str, dest: FileOutput, *, range: Optional[str] = None) -> int:
        """Streams the file's bytes into ``dest`` (a writable binary stream, or
        a path to create) and returns how many bytes were written. ``range``
        (``bytes=a-b``) asks for part of the file."""
        job = _Download(file_id, dest, range)
        attempt = 0
        try:
            while True:
                response = self._t.send(job.call(), stream=True)
                try:
                    job.begin(response.status_code)
                    for chunk in response.iter_bytes(CHUNK_SIZE):
                        job.write(chunk)
                    return job.written
                except TRANSPORT_ERRORS as exc:
                    if not job.resumable() or attempt >= self._t.max_retries:
                        raise _cut(file_id, exc) from exc
                finally:
                    response.close()
                time.sleep(backoff(attempt))
                attempt += 1
        finally:
            job.close()

    def content(self, file_id: str) -> bytes:
        """The whole file in memory (use :meth:`download` for large files)."""
        buffer = io.BytesIO()
        self.download(file_id, buffer)
        return buffer.getvalue()

    def delete(self, file_id: str) -> DeletedOut:
        """Deletes the file: gone from listings at once, its bytes soon after."""
        return cast(DeletedOut, self._t.json(Call("DELETE", f"/v1/files/{seg(file_id)}")))


class AsyncFiles:
    """The async twin of :class:`Files`."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def upload(
        self,
        file: FileInput,
        *,
        filename: Optional[str] = None,
        purpose: Optional[Purpose] = None,
        content_type: Optional[str] = None,
    ) -> FileOut:
        """See :meth:`Files.upload` (the stream is read with blocking reads)."""
        call, opened = _upload_call(file, filename, purpose, content_type)
        try:
            return cast(FileOut, await self._t.json(call))
        finally:
            if opened is not None:
                opened.close()

    async def list(
        self,
        *,
        purpose: Optional[Purpose] = None,
        session_id: Optional[str] = None,
        limit: Optional[int] = None,
        after: Optional[str] = None,
    ) -> FileList:
        """See :meth:`Files.list`."""
        call = Call("GET", "/v1/files", params=_list_params(purpose, session_id, limit, after))
        return cast(FileList, await self._t.json(call))

    async def get(self, file_id: str) -> FileOut:
        """See :meth:`Files.get`."""
        return cast(FileOut, await self._t.json(Call("GET", f"/v1/files/{seg(file_id)}")))

    async def download(self, file_id: str, dest: FileOutput, *, range: Optional[str] = None) -> int:
        """See :meth:`Files.download` (``dest`` is written with blocking writes)."""
        job = _Download(file_id, dest, range)
        attempt = 0
        try:
            while True:
                response = await self._t.send(job.call(), stream=True)
                try:
                    job.begin(response.status_code)
                    async for chunk in response.aiter_bytes(CHUNK_SIZE):
                        job.write(chunk)
                    return job.written
                except TRANSPORT_ERRORS as exc:
                    if not job.resumable() or attempt >= self._t.max_retries:
                        raise _cut(file_id, exc) from exc
                finally:
                    await response.aclose()
                await asyncio.sleep(backoff(attempt))
                attempt += 1
        finally:
            job.close()

    async def content(self, file_id: str) -> bytes:
        """See :meth:`Files.content`."""
        buffer = io.BytesIO()
        await self.download(file_id, buffer)
        return buffer.getvalue()

    async def delete(self, file_id: str) -> DeletedOut:
        """See :meth:`Files.delete`."""
        return cast(DeletedOut, await self._t.json(Call("DELETE", f"/v1/files/{seg(file_id)}")))
