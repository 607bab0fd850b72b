/**
 * Upload bodies for `POST /v1/files`. A Blob or bytes go as `FormData` (every runtime
 * builds it, and it can be sent again on a retry). A stream is framed here as
 * multipart/form-data chunk by chunk, so a large file is never held in memory; such a
 * body can be sent once only.
 */

import type { RequestBody } from "./http.js";

/** What `files.upload` takes. */
export type Uploadable =
  | Blob
  | ArrayBuffer
  | ArrayBufferView
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

export interface UploadBody {
  body: () => RequestBody;
  headers: Record<string, string>;
  replayable: boolean;
}

export function uploadBody(
  file: Uploadable,
  filename: string,
  contentType: string,
  fields: Record<string, string>,
): UploadBody {
  if (file instanceof Blob || file instanceof ArrayBuffer || ArrayBuffer.isView(file)) {
    const blob =
      file instanceof Blob ? file : new Blob([toBytes(file)], { type: contentType });
    return {
      body: () => {
        const form = new FormData();
        for (const [k, v] of Object.entries(fields)) form.append(k, v);
        form.append("file", blob, filename);
        return form;
      },
      headers: {}, // fetch writes the multipart Content-Type with its boundary
      replayable: true,
    };
  }
  const boundary = `----stewrd${randomHex(16)}`;
  return {
    body: () => multipartStream(boundary, fields, filename, contentType, file),
    headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
    replayable: false,
  };
}

function toBytes(view: ArrayBuffer | ArrayBufferView): Uint8Array<ArrayBuffer> {
  if (view instanceof ArrayBuffer) return new Uint8Array(view);
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
}

/** Escapes a name inside a quoted header parameter the way browsers' FormData does. */
function quote(name: string): string {
  return name.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");
}

function multipartStream(
  boundary: string,
  fields: Record<string, string>,
  filename: string,
  contentType: string,
  data: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let head = "";
  for (const [k, v] of Object.entries(fields)) {
    head += `--${boundary}\r\nContent-Disposition: form-data; name="${quote(k)}"\r\n\r\n${v}\r\n`;
  }
  head +=
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${quote(filename)}"\r\n` +
    `Content-Type: ${contentType}\r\n\r\n`;
  const tail = `\r\n--${boundary}--\r\n`;
  const source = iterate(data);
  let stage: "head" | "data" | "done" = "head";
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (stage === "head") {
        stage = "data";
        controller.enqueue(enc.encode(head));
        return;
      }
      const next = await source.next();
      if (!next.done) {
        controller.enqueue(next.value);
        return;
      }
      controller.enqueue(enc.encode(tail));
      controller.close();
      stage = "done";
    },
    async cancel(reason) {
      await source.return?.(reason);
    },
  });
}

async function* iterate(
  data: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  if (Symbol.asyncIterator in data) {
    // Node's streams and async generators (and ReadableStream where it is iterable).
    for await (const chunk of data as AsyncIterable<Uint8Array>) yield chunk;
    return;
  }
  const reader = (data as ReadableStream<Uint8Array>).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

function randomHex(bytes: number): string {
  const buf = new Uint8Array(bytes);
  // A boundary must only be unlikely to occur in the data, not secret: Web Crypto
  // where it is a global, else Math.random (Node 18 has no global `crypto`).
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(buf);
  else for (let i = 0; i < bytes; i++) buf[i] = Math.floor(Math.random() * 256);
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}
