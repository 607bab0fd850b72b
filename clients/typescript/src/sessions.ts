/** Sessions: reading, cancelling, answering pauses, and the long-poll and tool loops. */
import { StewrdError } from "./errors.js";
import { call, docPath, type QueryOf, type RequestOptions, type Transport } from "./http.js";
import { sessionEvents, type EventsOptions } from "./events.js";
import {
  isFinal,
  requiredAction,
  type ApprovalToolCall,
  type Decision,
  type DeliveryList,
  type FileList,
  type FunctionToolCall,
  type RetriedOut,
  type Session,
  type SessionPage,
  type StepList,
  type StewrdEvent,
  type ToolOutput,
} from "./types.js";
import { sleep } from "./util.js";

export interface WaitOptions {
  /** Give up (throw a `timeout_error`) after this long; default: wait as long as it takes. */
  maxWaitMs?: number;
  /** Also return when the session pauses in `requires_action`. */
  untilRequiresAction?: boolean;
  /** Seconds each long poll may be held by the server (1–60, default 30). */
  pollSeconds?: number;
  signal?: AbortSignal;
}

/**
 * A local function answering one client tool. `args` is the call's `arguments`, parsed
 * from JSON (typed `any` so handlers can destructure what their tool's schema
 * promises). A string result is sent as is, anything else as JSON.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ToolHandler = (args: any, call: FunctionToolCall) => unknown;

export interface RunToolsOptions extends WaitOptions {
  /**
   * Decides an `approve_tool_calls` pause. Without it, `runTools` returns the paused
   * session to the caller, who decides with `sessions.approvals`.
   */
  onApproval?: (calls: ApprovalToolCall[], session: Session) => Decision[] | Promise<Decision[]>;
}

/** Pages take `limit` and `after`; the document has them as path parameters by mistake. */
export interface PageQuery {
  limit?: number;
  after?: string;
}

export class Sessions {
  constructor(private readonly t: Transport) {}

  /** `GET /v1/sessions/{id}`; `wait` (0–60 s) holds the answer until a final status. */
  get(id: string, query: QueryOf<"get", "/v1/sessions/{id}"> = {}, opts?: RequestOptions): Promise<Session> {
    return call(
      this.t,
      "get",
      "/v1/sessions/{id}",
      { auth: "project", params: { id }, query, extraTimeoutMs: (query.wait ?? 0) * 1000 },
      opts,
    );
  }

  /** `GET /v1/sessions`: newest first; pass `next_cursor` as `after` for the next page. */
  list(query: QueryOf<"get", "/v1/sessions"> = {}, opts?: RequestOptions): Promise<SessionPage> {
    return call(this.t, "get", "/v1/sessions", { auth: "project", query }, opts);
  }

  /** `POST /v1/sessions/{id}/cancel`: stops a queued, running or paused run (409 if final). */
  cancel(id: string, opts?: RequestOptions): Promise<Session> {
    return call(this.t, "post", "/v1/sessions/{id}/cancel", { auth: "project", params: { id } }, opts);
  }

  /** `GET /v1/sessions/{id}/runs/{run_id}/steps`: a run's model and tool calls, in order. */
  steps(id: string, runId: string, opts?: RequestOptions): Promise<StepList> {
    return call(
      this.t,
      "get",
      "/v1/sessions/{id}/runs/{run_id}/steps",
      { auth: "project", params: { id, run_id: runId } },
      opts,
    );
  }

  /** `POST /v1/sessions/{id}/tool_outputs`: answers every pending client tool call at once. */
  toolOutputs(id: string, toolOutputs: ToolOutput[], opts?: RequestOptions): Promise<Session> {
    return call(
      this.t,
      "post",
      "/v1/sessions/{id}/tool_outputs",
      { auth: "project", params: { id }, body: { tool_outputs: toolOutputs } },
      opts,
    );
  }

  /**
   * `POST /v1/sessions/{id}/approvals`: decides every call awaiting approval at once.
   * An approval must carry the call's `arguments_sha256` from `required_action` (a
   * stale hash is 409 `approval_stale`); a denial may carry a `reason` for the model.
   */
  approvals(id: string, decisions: Decision[], opts?: RequestOptions): Promise<Session> {
    return call(
      this.t,
      "post",
      "/v1/sessions/{id}/approvals",
      { auth: "project", params: { id }, body: { decisions } },
      opts,
    );
  }

  /** `GET /v1/sessions/{id}/deliveries`: webhook delivery attempts. */
  deliveries(id: string, opts?: RequestOptions): Promise<DeliveryList> {
    return call(this.t, "get", "/v1/sessions/{id}/deliveries", { auth: "project", params: { id } }, opts);
  }

  /** `POST /v1/sessions/{id}/deliveries/retry`: sends the latest event again. */
  retryDelivery(id: string, opts?: RequestOptions): Promise<RetriedOut> {
    return call(this.t, "post", "/v1/sessions/{id}/deliveries/retry", { auth: "project", params: { id } }, opts);
  }

  /** `GET /v1/sessions/{id}/files`: the session's inputs and artifacts. */
  files(id: string, query: PageQuery = {}, opts?: RequestOptions): Promise<FileList> {
    return this.t.json<FileList>(
      {
        method: "GET",
        path: docPath("get", "/v1/sessions/{id}/files", { id }),
        query: { ...query },
        auth: "project",
        retryOnNetworkError: true,
      },
      opts,
    );
  }

  /** The session's events; see `Stewrd.events`. */
  events(id: string, opts?: EventsOptions): AsyncGenerator<StewrdEvent, void, undefined> {
    return sessionEvents(this.t, id, opts);
  }

  /** Long-polls until the session is final (or paused, if asked); see `Stewrd.wait`. */
  async wait(id: string, opts: WaitOptions = {}): Promise<Session> {
    const deadline = opts.maxWaitMs === undefined ? Infinity : Date.now() + opts.maxWaitMs;
    const poll = Math.min(60, Math.max(1, Math.floor(opts.pollSeconds ?? 30)));
    for (;;) {
      const remaining = deadline - Date.now();
      const wait = Math.max(0, Math.min(poll, Math.ceil(remaining / 1000)));
      const asked = Date.now();
      const session = await this.get(id, { wait }, opts.signal ? { signal: opts.signal } : {});
      if (isFinal(session.status)) return session;
      if (opts.untilRequiresAction && session.status === "requires_action") return session;
      if (Date.now() >= deadline) {
        throw new StewrdError({
          status: 0,
          type: "timeout_error",
          code: "wait_timeout",
          message: `session ${id} is still ${session.status} after ${opts.maxWaitMs} ms`,
        });
      }
      // The server answers at once when the session is paused (a state the client may
      // be waiting for); pace the loop then, instead of polling back to back.
      if (Date.now() - asked < wait * 1000 - 250) {
        await sleep(Math.min(1000, Math.max(0, deadline - Date.now())), opts.signal);
      }
    }
  }

  /** Answers `submit_tool_outputs` pauses with local functions; see `Stewrd.runTools`. */
  async runTools(
    id: string,
    handlers: Record<string, ToolHandler>,
    opts: RunToolsOptions = {},
  ): Promise<Session> {
    const reqOpts: RequestOptions = opts.signal ? { signal: opts.signal } : {};
    for (;;) {
      const session = await this.wait(id, { ...opts, untilRequiresAction: true });
      const action = requiredAction(session);
      if (isFinal(session.status) || !action) return session;
      if (action.type === "submit_tool_outputs") {
        const outputs = await Promise.all(action.tool_calls.map((c) => runHandler(handlers, c)));
        await this.toolOutputs(id, outputs, reqOpts);
      } else if (action.type === "approve_tool_calls" && opts.onApproval) {
        await this.approvals(id, await opts.onApproval(action.tool_calls, session), reqOpts);
      } else {
        return session; // a pause this call was given no way to answer
      }
    }
  }
}

/**
 * Runs one handler. What goes wrong in it (no handler, arguments that are not JSON, an
 * exception) is given to the model as `{"error": "…"}`, as stewrd does for server
 * tools, so the run goes on and the model can react, rather than staying paused until
 * it expires.
 */
async function runHandler(
  handlers: Record<string, ToolHandler>,
  toolCall: FunctionToolCall,
): Promise<ToolOutput> {
  const name = toolCall.function.name;
  const answer = (output: string): ToolOutput => ({ tool_call_id: toolCall.id, output });
  const error = (message: string) => answer(JSON.stringify({ error: message }));
  const handler = Object.prototype.hasOwnProperty.call(handlers, name) ? handlers[name] : undefined;
  if (!handler) return error(`no handler for tool ${name}`);
  let args: unknown;
  try {
    args = toolCall.function.arguments ? JSON.parse(toolCall.function.arguments) : {};
  } catch {
    return error("the arguments are not valid JSON");
  }
  try {
    const result = await handler(args, toolCall);
    return answer(typeof result === "string" ? result : JSON.stringify(result ?? null));
  } catch (err) {
    return error(err instanceof Error ? err.message : String(err));
  }
}
