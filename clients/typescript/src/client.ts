/** The `Stewrd` client: configuration, `agent()`, the loops, and the API's namespaces. */
import { Admin } from "./admin.js";
import { StewrdError } from "./errors.js";
import { sessionEvents, type EventsOptions } from "./events.js";
import { Files } from "./files.js";
import { call, Transport, type BodyOf, type RequestOptions } from "./http.js";
import { ProjectApi } from "./project.js";
import { Sessions, type RunToolsOptions, type ToolHandler, type WaitOptions } from "./sessions.js";
import type { AgentOut, AgentParams, Session, StewrdEvent } from "./types.js";
import { randomUUID } from "./util.js";

export interface StewrdOptions {
  /** Where stewrd's API listens, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** A project key (`sk-stw_…`), for every call but the admin ones. */
  apiKey?: string;
  /** The operator's `STEWRD_ADMIN_TOKEN`, for `client.admin`. */
  adminToken?: string;
  /** A `fetch` to use instead of the global one (for proxies, tests, instrumentation). */
  fetch?: typeof fetch;
  /** Retries after 429, 503 and (where safe) network errors; default 2. */
  maxRetries?: number;
  /** Each attempt's limit in ms (long polls add their wait to it); default 60 000. */
  timeoutMs?: number;
  /** A `Retry-After` longer than this (ms) is thrown, not waited out; default 60 000. */
  maxRetryAfterMs?: number;
}

export interface AgentOptions extends RequestOptions {
  /**
   * Sent as `Idempotency-Key`. By default the client makes one per `agent()` call and
   * sends the same one on each retry, so a retried submit never starts a second run.
   */
  idempotencyKey?: string;
}

export class Stewrd {
  readonly sessions: Sessions;
  readonly project: ProjectApi;
  readonly files: Files;
  readonly admin: Admin;
  private readonly t: Transport;

  constructor(options: StewrdOptions) {
    if (!options?.baseUrl) {
      throw new StewrdError({ status: 0, type: "client_error", code: "missing_base_url", message: "`baseUrl` is required" });
    }
    const f = options.fetch ?? globalThis.fetch;
    this.t = new Transport({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      adminToken: options.adminToken,
      // Called unbound, a browser's fetch throws "Illegal invocation".
      fetch: (input, init) => f(input, init),
      maxRetries: options.maxRetries ?? 2,
      timeoutMs: options.timeoutMs ?? 60_000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
    });
    this.sessions = new Sessions(this.t);
    this.project = new ProjectApi(this.t);
    this.files = new Files(this.t);
    this.admin = new Admin(this.t);
  }

  /**
   * `POST /v1/agent`: stores the message and queues a run; answers at once (202) with
   * the session id. Safe to retry: see `AgentOptions.idempotencyKey`.
   */
  async agent(params: AgentParams, opts: AgentOptions = {}): Promise<AgentOut> {
    const { idempotencyKey, ...rest } = opts;
    const key = idempotencyKey ?? (await randomUUID());
    return call(
      this.t,
      "post",
      "/v1/agent",
      {
        auth: "project",
        // AgentParams widens two fields the document under-describes (see types.ts).
        body: params as BodyOf<"post", "/v1/agent">,
        headers: { "idempotency-key": key },
        retryOnNetworkError: true, // the key makes a repeat return the first answer
        retryCodes: ["idempotency_key_in_use"],
      },
      rest,
    );
  }

  /**
   * Waits for the session's latest run to end, by long-polling `GET /v1/sessions/{id}?wait=`,
   * and returns the session. With `untilRequiresAction` it also returns when the run
   * pauses for tool outputs or approvals.
   */
  wait(sessionId: string, opts?: WaitOptions): Promise<Session> {
    return this.sessions.wait(sessionId, opts);
  }

  /**
   * The session's server-sent events (`session.<status>`, `run.delta`, `run.step`,
   * `run.reset`), each once, across reconnects; ends when the session's last run is
   * final. Pass `lastEventId` to resume after an event seen earlier.
   */
  events(sessionId: string, opts?: EventsOptions): AsyncGenerator<StewrdEvent, void, undefined> {
    return sessionEvents(this.t, sessionId, opts);
  }

  /**
   * Runs the session to its end, answering each `submit_tool_outputs` pause with
   * `handlers[name](parsedArguments, call)`. Returns the final session, or the paused
   * one when it waits for an approval and no `onApproval` was given.
   */
  runTools(sessionId: string, handlers: Record<string, ToolHandler>, opts?: RunToolsOptions): Promise<Session> {
    return this.sessions.runTools(sessionId, handlers, opts);
  }

  /** `GET /healthz`: the process is up. */
  health(opts?: RequestOptions): Promise<Record<string, unknown>> {
    return call(this.t, "get", "/healthz", { auth: "none" }, opts);
  }

  /** `GET /readyz`: true when Postgres and RabbitMQ are reachable (asked once, no retry). */
  async ready(opts?: RequestOptions): Promise<boolean> {
    const res = await this.t.request(
      { method: "GET", path: "/readyz", auth: "none", retryOnNetworkError: false, okStatuses: [503] },
      { maxRetries: 0, ...opts },
    );
    return res.status === 200;
  }

  /** `GET /metrics`: Prometheus text; `token` when `STEWRD_METRICS_TOKEN` is set. */
  async metrics(opts: RequestOptions & { token?: string } = {}): Promise<string> {
    const { token, ...rest } = opts;
    const res = await this.t.request(
      {
        method: "GET",
        path: "/metrics",
        auth: "none",
        headers: { accept: "text/plain", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        retryOnNetworkError: true,
      },
      rest,
    );
    return res.text();
  }
}
