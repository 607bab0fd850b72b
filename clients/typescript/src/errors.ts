/**
 * The one error type of the client. API errors carry the fields of the contract's
 * error body (`{"error": {"type", "code", "message", "param"}}`) and the HTTP status;
 * failures that never got an answer (connection refused or cut, timeout) have
 * `status` 0 and `type` `connection_error` or `timeout_error`, so callers need only
 * one `catch (e) { if (e instanceof StewrdError) … }`.
 */
export class StewrdError extends Error {
  /** HTTP status; 0 when no answer came (network error, timeout, bad configuration). */
  readonly status: number;
  /** `invalid_request_error`, `authentication_error`, `not_found_error`, …, or a client-side type. */
  readonly type: string;
  /** Stable, machine-readable code, e.g. `missing_field`, `session_busy`, `invalid_api_key`. */
  readonly code: string;
  /** The request field or parameter at fault, when the server names one. */
  readonly param: string | null;
  /** The server's `x-request-id`, to quote in a bug report. */
  readonly requestId: string | null;
  /** Seconds the server asked to wait (`Retry-After`), when it said so. */
  readonly retryAfter: number | null;

  constructor(init: {
    status: number;
    type: string;
    code: string;
    message: string;
    param?: string | null;
    requestId?: string | null;
    retryAfter?: number | null;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "StewrdError";
    this.status = init.status;
    this.type = init.type;
    this.code = init.code;
    this.param = init.param ?? null;
    this.requestId = init.requestId ?? null;
    this.retryAfter = init.retryAfter ?? null;
  }
}

/** Thrown by `verifyWebhook` when a delivery is not authentic or not fresh. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WebhookVerificationError";
  }
}

/** A client-side error that the caller caused (missing token, bad argument). */
export function usageError(code: string, message: string): StewrdError {
  return new StewrdError({ status: 0, type: "client_error", code, message });
}
