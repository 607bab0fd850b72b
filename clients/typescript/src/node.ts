/**
 * `@stewrd/client/node`: file helpers that need Node's `fs`, kept out of the main
 * entry so that it stays free of Node imports for browsers.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { Stewrd, UploadOptions, FileObject, RequestOptions } from "./index.js";

/**
 * Uploads the file at `path`, streamed from disk (never read whole into memory). The
 * file name defaults to the path's last part.
 */
export async function uploadPath(client: Stewrd, path: string, opts: UploadOptions = {}): Promise<FileObject> {
  await stat(path); // fail with ENOENT here, not halfway through a request
  return client.files.upload(createReadStream(path), { filename: basename(path), ...opts });
}

/**
 * Streams a file's bytes to `path`, and returns how many were written. The file is
 * written as the bytes arrive, so it may be partial if the download fails.
 */
export async function downloadToPath(
  client: Stewrd,
  fileId: string,
  path: string,
  opts: RequestOptions & { range?: string } = {},
): Promise<number> {
  const content = await client.files.content(fileId, opts);
  let bytes = 0;
  const source = Readable.fromWeb(content.body as unknown as NodeReadableStream<Uint8Array>);
  source.on("data", (chunk: Uint8Array) => {
    bytes += chunk.byteLength;
  });
  await pipeline(source, createWriteStream(path));
  return bytes;
}
