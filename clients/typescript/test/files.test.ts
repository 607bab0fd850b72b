// 6. Files: upload (bytes, Blob, stream, path), list, download as a stream, delete.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { downloadToPath, uploadPath } from "@stewrd/client/node";
import { Stewrd, StewrdError } from "@stewrd/client";
import { newProject, startHttpProxy } from "./helpers.js";

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Reads a stream chunk by chunk (as a caller would), counting the chunks. */
async function drain(stream: ReadableStream<Uint8Array>): Promise<{ bytes: Buffer; chunks: number }> {
  const parts: Uint8Array[] = [];
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) parts.push(chunk);
  return { bytes: Buffer.concat(parts), chunks: parts.length };
}

test("upload bytes, list, download the same bytes as a stream, delete", async () => {
  const { client } = await newProject("files");
  const data = new Uint8Array(randomBytes(300 * 1024));
  const file = await client.files.upload(data, { filename: "blob.bin", purpose: "input" });
  assert.match(file.id, /^file_[0-9a-f]{32}$/);
  assert.equal(file.bytes, data.length);
  assert.equal(file.filename, "blob.bin");
  assert.equal(file.sha256, sha256(data));
  assert.equal(file.content_type, "application/octet-stream");

  const listed = await client.files.list({ purpose: "input", limit: 10 });
  assert.deepEqual(
    listed.data.map((f) => f.id),
    [file.id],
  );
  assert.equal((await client.files.get(file.id)).sha256, file.sha256);

  const download = await client.files.content(file.id);
  assert.equal(download.status, 200);
  assert.equal(download.contentLength, data.length);
  assert.equal(download.filename, "blob.bin");
  const { bytes } = await drain(download.body);
  assert.ok(bytes.equals(Buffer.from(data)), "downloaded bytes equal the upload");

  const part = await client.files.content(file.id, { range: "bytes=10-19" });
  assert.equal(part.status, 206);
  assert.ok((await drain(part.body)).bytes.equals(Buffer.from(data.subarray(10, 20))));

  assert.deepEqual(await client.files.delete(file.id), { id: file.id, deleted: true });
  await assert.rejects(client.files.get(file.id), (err: unknown) => err instanceof StewrdError && err.status === 404);
  assert.deepEqual((await client.files.list()).data, []);
});

test("upload from a ReadableStream and a Blob; a file is attached to a message", async () => {
  const { client } = await newProject("files-stream");
  const text = "streamed text file\n".repeat(2000);
  const encoded = new TextEncoder().encode(text);
  let offset = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      // Small pieces, so the multipart body really is framed chunk by chunk.
      if (offset >= encoded.length) return controller.close();
      controller.enqueue(encoded.slice(offset, offset + 4096));
      offset += 4096;
    },
  });
  const fromStream = await client.files.upload(stream, { filename: "notes.txt" });
  assert.equal(fromStream.bytes, encoded.length);
  assert.equal(fromStream.sha256, sha256(encoded));
  assert.match(fromStream.content_type, /^text\/plain/);

  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0]);
  const fromBlob = await client.files.upload(new Blob([png]), { filename: "x.png" });
  assert.equal(fromBlob.bytes, png.length);

  const { session_id } = await client.agent({ message: "read this", files: [fromStream.id] });
  const session = await client.wait(session_id);
  assert.equal(session.status, "succeeded");
  assert.deepEqual(
    session.messages?.[0]?.files?.map((f) => f.id),
    [fromStream.id],
  );
  const sessionFiles = await client.sessions.files(session_id);
  assert.deepEqual(
    sessionFiles.data.map((f) => f.id),
    [fromStream.id],
  );
});

test("@stewrd/client/node uploads from a path and downloads to a path", async () => {
  const { client } = await newProject("files-node");
  const dir = await mkdtemp(join(tmpdir(), "stewrd-ts-"));
  try {
    const data = randomBytes(2 * 1024 * 1024 + 7);
    await writeFile(join(dir, "in.bin"), data);
    const file = await uploadPath(client, join(dir, "in.bin"));
    assert.equal(file.filename, "in.bin");
    assert.equal(file.sha256, sha256(data));
    const written = await downloadToPath(client, file.id, join(dir, "out.bin"));
    assert.equal(written, data.length);
    assert.ok((await readFile(join(dir, "out.bin"))).equals(data));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("a download is a stream: its first bytes are readable before the rest is sent", async () => {
  const { client, apiKey } = await newProject("files-streaming");
  const data = new Uint8Array(randomBytes(1024 * 1024));
  const file = await client.files.upload(data, { filename: "big.bin" });
  let release = () => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const proxy = await startHttpProxy((req) =>
    req.path.endsWith("/content") ? { kind: "forward-stalled", bytes: 64 * 1024, release: released } : { kind: "forward" },
  );
  try {
    const viaProxy = new Stewrd({ baseUrl: proxy.url, apiKey });
    // The proxy holds back everything after the first 64 KiB: a client that buffered
    // the body would not answer before the release.
    let timer: NodeJS.Timeout | undefined;
    const download = await Promise.race([
      viaProxy.files.content(file.id),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the download was buffered")), 5_000);
      }),
    ]).finally(() => clearTimeout(timer));
    const reader = download.body.getReader();
    const first = await reader.read();
    assert.ok(!first.done && first.value.byteLength > 0 && first.value.byteLength <= 64 * 1024);
    release();
    const parts: Uint8Array[] = [first.value];
    for (let r = await reader.read(); !r.done; r = await reader.read()) parts.push(r.value);
    assert.ok(Buffer.concat(parts).equals(Buffer.from(data)));
  } finally {
    release();
    await proxy.close();
  }
});
