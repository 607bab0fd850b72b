"""Files: upload from a path and from a stream, list, download (streamed),
attach to a message, delete."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

import stewrd

from conftest import ProjectInfo

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415478"
    "9c63f8cfc00000030101"
    "00c9fe92ef0000000049454e44ae426082"
)


def test_upload_list_download_delete(client: stewrd.Client, tmp_path: Path) -> None:
    text = "Quarterly notes: revenue up, costs flat.\n".encode()
    path = tmp_path / "notes.txt"
    path.write_bytes(text)
    from_path = client.files.upload(path)
    assert from_path["filename"] == "notes.txt"
    assert from_path["bytes"] == len(text)
    assert from_path["sha256"] == hashlib.sha256(text).hexdigest()
    assert from_path["content_type"].startswith("text/plain")
    assert from_path["purpose"] == "input"

    blob = os.urandom(200_000) + PNG
    from_stream = client.files.upload(io.BytesIO(blob), filename="blob.bin", purpose="input")
    assert from_stream["bytes"] == len(blob)
    assert from_stream["content_type"] == "application/octet-stream"

    listed = client.files.list()
    assert [f["id"] for f in listed["data"]] == [from_stream["id"], from_path["id"]]
    assert [f["id"] for f in client.files.list(limit=1)["data"]] == [from_stream["id"]]
    assert client.files.get(from_path["id"]) == from_path

    out = io.BytesIO()
    assert client.files.download(from_stream["id"], out) == len(blob)
    assert out.getvalue() == blob
    assert client.files.content(from_path["id"]) == text
    target = tmp_path / "copy.bin"
    client.files.download(from_stream["id"], target)
    assert target.read_bytes() == blob
    part = io.BytesIO()
    client.files.download(from_stream["id"], part, range="bytes=10-19")
    assert part.getvalue() == blob[10:20]

    deleted = client.files.delete(from_path["id"])
    assert deleted == {"id": from_path["id"], "deleted": True}
    assert [f["id"] for f in client.files.list()["data"]] == [from_stream["id"]]
    with pytest.raises(stewrd.NotFoundError):
        client.files.get(from_path["id"])


def test_upload_from_an_open_file_and_attach_it(client: stewrd.Client, tmp_path: Path) -> None:
    path = tmp_path / "pixel.png"
    path.write_bytes(PNG)
    with open(path, "rb") as f:
        image = client.files.upload(f)
    assert image["filename"] == "pixel.png" and image["content_type"] == "image/png"
    run = client.agent("What is in this picture?", files=[image["id"]])
    session = client.wait(run["session_id"], timeout=60)
    assert session["status"] == "succeeded"
    assert session["messages"][0]["files"][0]["id"] == image["id"]
    assert [f["id"] for f in client.sessions.files(run["session_id"])["data"]] == [image["id"]]
    assert [f["id"] for f in client.files.list(session_id=run["session_id"])["data"]] == [image["id"]]


class OneShot(io.RawIOBase):
    """A stream that can only be read forward, like a pipe or a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_upload_from_a_one_shot_stream(client: stewrd.Client) -> None:
    data = os.urandom(150_000)
    uploaded = client.files.upload(OneShot(data), filename="piped.bin")
    assert uploaded["bytes"] == len(data)
    assert client.files.content(uploaded["id"]) == data


def test_upload_errors(client: stewrd.Client) -> None:
    with pytest.raises(stewrd.BadRequestError) as raised:
        client.agent("see file", files=["file_" + "0" * 32])
    assert raised.value.param == "files"
    with pytest.raises(TypeError):
        client.files.upload(12345)  # type: ignore[arg-type]


async def test_files_async(project: ProjectInfo, tmp_path: Path) -> None:
    data = os.urandom(100_000)
    async with project.async_client() as client:
        uploaded = await client.files.upload(data, filename="a.bin")
        out = io.BytesIO()
        assert await client.files.download(uploaded["id"], out) == len(data)
        assert out.getvalue() == data
        assert (await client.files.list())["data"][0]["id"] == uploaded["id"]
        assert (await client.files.delete(uploaded["id"]))["deleted"] is True
