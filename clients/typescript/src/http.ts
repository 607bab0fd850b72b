/**
 * The transport: URLs, auth, timeouts, error bodies and the retry policy. Every call
 * of the client goes through `Transport.request`, so the policy lives in one place:
 *
 * - 429 and 503 are retried (they mean the server did not act on the request),
 *   waiting `Retry-After` seconds when given, else an exponential backoff; a
 *   `Retry-After` longer than `maxRetryAfterMs` is not waited out but thrown, since
 *   e.g. an exhausted daily budget answers with hours.
 * - A network error or timeout is retried only where repeating cannot do anything
 *   twice: reads (GET) and `POST /v1/agent`, which carries an `Idempotency-Key`
 *   made once per call. Any other POST/PUT/DELETE may have been carried out before the
 *   connection broke, so it is thrown to the caller instead.
 * - A submit answered 409 `idempotency_key_in_use` (its earlier attempt, timed out on
 *   our side, is still being stored) is retried after a backoff, as the server asks.
 * - A body that can be sent once only (an upload from a stream) is never retried.
 */
import type { paths } from "./schema.js";
import { StewrdError, usageError } from "./errors.js";
import { backoffMs, sleep } from "./util.js";

export type HttpMethod = "get" | "put" | "post" | "delete";
/** Which bearer token a call needs. */
export type Auth = "project" | "admin" | "none";
type QueryValue = string | number | boolean | null | undefined;
/** A fetch body (spelled via RequestInit: `BodyInit` is a DOM-only name). */
export type RequestBody = NonNullable<RequestInit["body"]>;

/** Per-call options every method of the client takes last. */
export interface RequestOptions {
  /** Aborts the call (and its retries); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Overrides the client's `timeoutMs` for each attempt of this call. */
  timeoutMs?: number;
  /** Overrides the client's `maxRetries` for this call. */
  maxRetries?: number;
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

export interface TransportConfig {
  baseUrl: string;
  apiKey?: string | undefined;
  adminToken?: string | undefined;
  fetch: typeof fetch;
  maxRetries: number;
  timeoutMs: number;
  maxRetryAfterMs: number;
}

export interface RawRequest {
  method: "GET" | "PUT" | "POST" | "DELETE";
  /** Path with its parameters already filled in. */
  path: string;
  query?: Record<string, QueryValue> | undefined;
  auth: Auth;
  /** A JSON body. */
  json?: unknown;
  /** Any other body; called once per attempt. */
  body?: (() => RequestBody) | undefined;
  /** False when `body` can be sent once only (a stream): then nothing is retried. */
  bodyReplayable?: boolean;
  headers?: Record<string, string> | undefined;
  /** Safe to repeat after a network error or timeout (reads, idempotent submits). */
  retryOnNetworkError: boolean;
  /** Return once the headers are in; the timeout does not cover reading the body. */
  stream?: boolean;
  /**
   * Error codes that mean "the same request is still being processed: retry shortly"
   * (`idempotency_key_in_use` of a submit whose earlier attempt timed out).
   */
  retryCodes?: string[];
  /** Statuses that are answers rather than errors (e.g. 503 of `/readyz`). */
  okStatuses?: number[];
  /** Added to the timeout, for long polls that are slow on purpose. */
  extraTimeoutMs?: number;
}

/** Marks the abort our own timer caused, to tell it from the caller's signal. */
class AttemptTimeout extends Error {}

export class Transport {
  constructor(readonly config: TransportConfig) {}

  url(path: string, query?: Record<string, QueryValue>): string {
    const url = new URL(this.config.baseUrl.replace(/\/+$/, "") + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, String(v));
    }
    return url.toString();
  }

  /** Sends the request (with retries) and returns the response; throws on error statuses. */
  async request(req: RawRequest, opts: RequestOptions = {}): Promise<Response> {
    const token = this.token(req.auth); // a missing token is the caller's error: no retry
    const maxRetries = req.bodyReplayable === false ? 0 : (opts.maxRetries ?? this.config.maxRetries);
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.attempt(req, token, opts);
      } catch (err) {
        if (opts.signal?.aborted) throw opts.signal.reason;
        const failure = networkError(err);
        if (!req.retryOnNetworkError || attempt >= maxRetries) throw failure;
        await sleep(backoffMs(attempt), opts.signal);
        continue;
      }
      if (res.ok || req.okStatuses?.includes(res.status)) return res;

      const retryAfter = retryAfterMs(res.headers);
      const retryable = res.status === 429 || res.status === 503;
      const tooLong = retryAfter !== null && retryAfter > this.config.maxRetryAfterMs;
      if (retryable && attempt < maxRetries && !tooLong) {
        await res.body?.cancel().catch(() => undefined);
        await sleep(retryAfter ?? backoffMs(attempt), opts.signal);
        continue;
      }
      const error = await errorFromResponse(res);
      if (req.retryCodes?.includes(error.code) && attempt < maxRetries) {
        await sleep(backoffMs(attempt), opts.signal);
        continue;
      }
      throw error;
    }
  }

  /** `request` and the JSON answer; `undefined` for an empty body (204). */
  async json<T>(req: RawRequest, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(req, opts);
    const text = await res.text(); // already buffered by `attempt`, under its timeout
    if (text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new StewrdError({
        status: res.status,
        type: "api_error",
        code: "invalid_json",
        message: `the server's answer is not JSON: ${(err as Error).message}`,
        requestId: res.headers.get("x-request-id"),
      });
    }
  }

  private async attempt(req: RawRequest, token: string | undefined, opts: RequestOptions): Promise<Response> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    let body: RequestBody | undefined;
    if (req.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(req.json);
    } else if (req.body) {
      body = req.body();
    }
    Object.assign(headers, req.headers, opts.headers);

    // One controller per attempt: our timeout and the caller's signal both abort it.
    const controller = new AbortController();
    const onAbort = () => controller.abort(opts.signal?.reason);
    if (opts.signal?.aborted) throw opts.signal.reason;
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    const timeoutMs = (opts.timeoutMs ?? this.config.timeoutMs) + (req.extraTimeoutMs ?? 0);
    const timer = setTimeout(() => controller.abort(new AttemptTimeout()), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
    };

    const init: RequestInit & { duplex?: "half" } = {
      method: req.method,
      headers,
      signal: controller.signal,
    };
    if (body !== undefined) init.body = body;
    // Node's fetch needs `duplex` to send a ReadableStream body.
    if (body instanceof ReadableStream) init.duplex = "half";

    try {
      const res = await this.config.fetch(this.url(req.path, req.query), init);
      if (req.stream) {
        clearTimeout(timer); // the caller's signal still reaches the body
        return res;
      }
      // Buffer the body within the attempt: a stalled body times out, and a body cut
      // off counts as this attempt's network error (retried where that is safe).
      const buf = await res.arrayBuffer();
      done();
      return new Response(res.status === 204 || res.status === 304 ? null : buf, {
        status: res.status,
        statusText: res.statusText,
        headers: res.headers,
      });
    } catch (err) {
      done();
      if (controller.signal.reason instanceof AttemptTimeout) {
        throw new StewrdError({
          status: 0,
          type: "timeout_error",
          code: "timeout",
          message: `${req.method} ${req.path} got no answer within ${timeoutMs} ms`,
          cause: err,
        });
      }
      throw err;
    }
  }

  private token(auth: Auth): string | undefined {
    if (auth === "none") return undefined;
    if (auth === "admin") {
      if (!this.config.adminToken) {
        throw usageError("missing_admin_token", "this call needs `adminToken` in the client's options");
      }
      return this.config.adminToken;
    }
    if (!this.config.apiKey) {
      throw usageError("missing_api_key", "this call needs `apiKey` in the client's options");
    }
    return this.config.apiKey;
  }
}

function networkError(err: unknown): StewrdError {
  if (err instanceof StewrdError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new StewrdError({
    status: 0,
    type: "connection_error",
    code: "connection_error",
    message: `could not reach the server: ${message}`,
    cause: err,
  });
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; null when absent or bad. */
export function retryAfterMs(headers: Headers): number | null {
  const value = headers.get("retry-after");
  if (value === null) return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/** Turns an error answer into a StewrdError, whatever its body. */
export async function errorFromResponse(res: Response): Promise<StewrdError> {
  const text = await res.text().catch(() => "");
  const retryAfter = retryAfterMs(res.headers);
  const common = {
    status: res.status,
    requestId: res.headers.get("x-request-id"),
    retryAfter: retryAfter === null ? null : retryAfter / 1000,
  };
  try {
    const body = JSON.parse(text) as { error?: Record<string, unknown> };
    const e = body.error;
    if (e && typeof e === "object") {
      return new StewrdError({
        ...common,
        type: typeof e.type === "string" ? e.type : "api_error",
        code: typeof e.code === "string" ? e.code : `http_${res.status}`,
        message: typeof e.message === "string" ? e.message : `HTTP ${res.status}`,
        param: typeof e.param === "string" ? e.param : null,
      });
    }
  } catch {
    // Not JSON (a proxy's error page, say): fall through to a generic error.
  }
  return new StewrdError({
    ...common,
    type: "api_error",
    code: `http_${res.status}`,
    message: `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ""}`,
  });
}

// ---- Types derived from the OpenAPI document -------------------------------------

type Op<P extends keyof paths, M extends HttpMethod> = paths[P][M];

/** The paths that have an operation for `M`. */
export type PathOf<M extends HttpMethod> = {
  [P in keyof paths]: paths[P][M] extends { responses: unknown } ? P : never;
}[keyof paths];

/** The JSON body of the success answer (`void` for one without a body). */
export type ResponseOf<M extends HttpMethod, P extends PathOf<M>> =
  Op<P, M> extends { responses: infer R }
    ? {
        [K in keyof R]: K extends 200 | 201 | 202 | 204
          ? R[K] extends { content: { "application/json": infer T } }
            ? T
            : void
          : never;
      }[keyof R]
    : never;

/** The JSON request body, or `never` for an operation without one. */
export type BodyOf<M extends HttpMethod, P extends PathOf<M>> =
  Op<P, M> extends { requestBody: { content: { "application/json": infer B } } } ? B : never;

/** The path parameters, as the document names them. */
export type PathParamsOf<M extends HttpMethod, P extends PathOf<M>> =
  Op<P, M> extends { parameters: { path: infer X } } ? X : never;

/** Fills `{name}` placeholders with URL-encoded values. */
export function fillPath(template: string, params: Record<string, string> = {}): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined || value === "") {
      throw usageError("missing_path_parameter", `missing path parameter \`${name}\``);
    }
    return encodeURIComponent(value);
  });
}

export interface CallInit<M extends HttpMethod, P extends PathOf<M>> {
  auth: Auth;
  params?: PathParamsOf<M, P>;
  query?: Record<string, QueryValue> | undefined;
  body?: BodyOf<M, P>;
  headers?: Record<string, string>;
  /** Defaults to true for GET only; see the module comment. */
  retryOnNetworkError?: boolean;
  retryCodes?: string[];
  extraTimeoutMs?: number;
}

/**
 * One JSON operation of the document, typed by its path and method: the path must
 * exist in `paths` (so a renamed or removed path fails to compile after
 * `npm run generate`), and the body and answer types come from the document.
 */
export function call<M extends HttpMethod, P extends PathOf<M>>(
  transport: Transport,
  method: M,
  path: P,
  init: CallInit<M, P>,
  opts?: RequestOptions,
): Promise<ResponseOf<M, P>> {
  const req: RawRequest = {
    method: method.toUpperCase() as RawRequest["method"],
    path: fillPath(path, init.params as Record<string, string> | undefined),
    query: init.query,
    auth: init.auth,
    json: init.body,
    headers: init.headers,
    retryOnNetworkError: init.retryOnNetworkError ?? method === "get",
  };
  if (init.extraTimeoutMs !== undefined) req.extraTimeoutMs = init.extraTimeoutMs;
  if (init.retryCodes) req.retryCodes = init.retryCodes;
  return transport.json<ResponseOf<M, P>>(req, opts);
}

/** The query parameters, as the document names them. */
export type QueryOf<M extends HttpMethod, P extends PathOf<M>> =
  Op<P, M> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/**
 * A path of the document filled in, for the calls `call` cannot type (multipart,
 * streams, query parameters the document misplaces): the template still has to be
 * one of the document's paths for `method`.
 */
export function docPath<M extends HttpMethod>(
  _method: M,
  template: PathOf<M>,
  params?: Record<string, string>,
): string {
  return fillPath(template, params);
}
