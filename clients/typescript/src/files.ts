/** Files: upload (from bytes or a stream), list, metadata, download as a stream, delete. */
import { call, docPath, type RequestOptions, type Transport } from "./http.js";
import { uploadBody, type Uploadable } from "./multipart.js";
import type { FileDeleted, FileList, FileObject, FilePurpose } from "./types.js";

export interface UploadOptions extends RequestOptions {
  /** The part's file name, kept as `filename` (default: a File's name, else `upload`). */
  filename?: string;
  /** Only `input` may be uploaded (the default). */
  purpose?: "input";
  /** Sent as the part's type; the server sniffs the real one anyway. */
  contentType?: string;
}

/** The document has these query parameters as path parameters by mistake. */
export interface FileListQuery {
  purpose?: FilePurpose;
  session_id?: string;
  limit?: number;
  after?: string;
}

/** A download: the bytes as a stream, read as they arrive (never buffered whole). */
export interface FileContent {
  body: ReadableStream<Uint8Array>;
  /** 200, or 206 for a `range`. */
  status: number;
  contentType: string | null;
  contentLength: number | null;
  /** `Content-Range` of a partial answer. */
  contentRange: string | null;
  /** The name from `Content-Disposition`, when it gives one. */
  filename: string | null;
}

export class Files {
  constructor(private readonly t: Transport) {}

  /**
   * `POST /v1/files`. A Blob/File, ArrayBuffer or typed array is sent as FormData and
   * may be retried after a 429/503; a ReadableStream or async iterable is streamed
   * (never held in memory) and, since it can be read once only, never retried.
   */
  upload(file: Uploadable, opts: UploadOptions = {}): Promise<FileObject> {
    const name =
      opts.filename ?? (typeof File !== "undefined" && file instanceof File ? file.name : "upload");
    const contentType =
      opts.contentType ?? (file instanceof Blob && file.type ? file.type : "application/octet-stream");
    const fields: Record<string, string> = opts.purpose ? { purpose: opts.purpose } : {};
    const upload = uploadBody(file, name, contentType, fields);
    return this.t.json<FileObject>(
      {
        method: "POST",
        path: docPath("post", "/v1/files"),
        auth: "project",
        body: upload.body,
        bodyReplayable: upload.replayable,
        headers: upload.headers,
        retryOnNetworkError: false, // an upload may have been stored before the cut
      },
      opts,
    );
  }

  /** `GET /v1/files`: newest first, `{data, next_cursor}`. */
  list(query: FileListQuery = {}, opts?: RequestOptions): Promise<FileList> {
    return this.t.json<FileList>(
      {
        method: "GET",
        path: docPath("get", "/v1/files"),
        query: { ...query },
        auth: "project",
        retryOnNetworkError: true,
      },
      opts,
    );
  }

  /** `GET /v1/files/{id}`. */
  get(id: string, opts?: RequestOptions): Promise<FileObject> {
    return call(this.t, "get", "/v1/files/{id}", { auth: "project", params: { id } }, opts);
  }

  /**
   * `GET /v1/files/{id}/content` as a stream. `range` is an HTTP range such as
   * `bytes=0-99`. The timeout covers the wait for the headers only; pass a `signal`
   * to bound the whole download.
   */
  async content(id: string, opts: RequestOptions & { range?: string } = {}): Promise<FileContent> {
    const res = await this.t.request(
      {
        method: "GET",
        path: docPath("get", "/v1/files/{id}/content", { id }),
        auth: "project",
        headers: { accept: "*/*", ...(opts.range ? { range: opts.range } : {}) },
        retryOnNetworkError: true,
        stream: true,
      },
      opts,
    );
    const length = res.headers.get("content-length");
    return {
      body: res.body ?? new ReadableStream({ start: (c) => c.close() }),
      status: res.status,
      contentType: res.headers.get("content-type"),
      contentLength: length === null ? null : Number(length),
      contentRange: res.headers.get("content-range"),
      filename: dispositionFilename(res.headers.get("content-disposition")),
    };
  }

  /** `DELETE /v1/files/{id}` → `{id, deleted: true}`. */
  delete(id: string, opts?: RequestOptions): Promise<FileDeleted> {
    return call(this.t, "delete", "/v1/files/{id}", { auth: "project", params: { id } }, opts);
  }
}

/** The file name of `attachment; filename="…"` (or RFC 5987 `filename*=UTF-8''…`). */
function dispositionFilename(value: string | null): string | null {
  if (!value) return null;
  const extended = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(value);
  if (extended?.[1]) {
    try {
      return decodeURIComponent(extended[1]);
    } catch {
      // fall back to the plain parameter
    }
  }
  const plain = /filename\s*=\s*"((?:\\.|[^"\\])*)"|filename\s*=\s*([^;]+)/i.exec(value);
  const name = plain?.[1] ?? plain?.[2];
  return name === undefined ? null : name.replace(/\\(.)/g, "$1").trim();
}
