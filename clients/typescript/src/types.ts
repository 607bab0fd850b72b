/**
 * Names for the generated OpenAPI types (src/schema.d.ts), plus the few shapes the
 * document leaves open (`required_action`, event payloads) or narrower than the
 * contract (`response_format` with `json_schema`, built-in tools' `require_approval`).
 */
import type { components } from "./schema.js";

type S = components["schemas"];

export type Session = S["SessionOut"];
export type SessionPage = S["SessionPage"];
export type SessionStatus = S["RunStatus"];
export type Run = S["RunOut"];
export type Message = S["MessageOut"];
export type Usage = S["Usage"];
export type Step = S["StepOut"];
export type StepList = S["StepList"];
export type AgentOut = S["AgentOut"];
export type ToolOutput = S["ToolOutputIn"];
export type Decision = S["DecisionIn"];
export type DeliveryList = S["DeliveryList"];
export type Delivery = S["DeliveryOut"];
export type RetriedOut = S["RetriedOut"];
export type Project = S["ProjectOut"];
export type ProjectList = S["ProjectList"];
export type CreatedProject = S["CreatedProjectOut"];
export type CreatedKey = S["CreatedKeyOut"];
export type PutLlm = S["PutLlmIn"];
export type LlmConfig = S["LlmOut"];
export type Limits = S["LimitsIn"];
export type RateLimit = S["RateLimitIn"];
export type WebhookSecret = S["WebhookSecretOut"];
export type ServerTool = S["ServerTool"];
export type ToolsOut = S["ToolsOut"];
export type McpServerIn = S["McpServerIn"];
export type McpServersOut = S["McpServersOut"];
export type McpToolsOut = S["McpToolsOut"];
export type UsageOut = S["UsageOut"];
export type Price = S["Price"];
export type PriceIn = S["PriceIn"];
export type PricesOut = S["PricesOut"];
export type FileObject = S["FileOut"];
export type FileList = S["FileList"];
export type FileDeleted = S["DeletedOut"];
export type FilePurpose = S["Purpose"];
export type RequireApproval = S["RequireApproval"];
export type ErrorBody = S["ErrorResponse"];

/** Statuses after which a session's latest run changes no more. */
export const FINAL_STATUSES: readonly SessionStatus[] = ["succeeded", "failed", "cancelled"];

export function isFinal(status: SessionStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

type DocAgentIn = S["CreateAgentIn"];
type DocTool = NonNullable<DocAgentIn["tools"]>[number];

/**
 * A tool a run offers. The document lists function tools and `web_fetch`; the
 * contract also gives built-in tools a `require_approval` entry and names `browser`.
 */
export type AgentTool =
  | DocTool
  | { type: "web_fetch"; require_approval?: RequireApproval }
  | { type: "browser"; require_approval?: RequireApproval };

/**
 * `response_format` is passed to the provider as given; the document only describes
 * its `type`, so the `json_schema` member the contract documents is spelled out here.
 */
export type ResponseFormat =
  | NonNullable<DocAgentIn["response_format"]>
  | {
      type: "json_schema";
      json_schema: {
        name: string;
        description?: string;
        schema?: Record<string, unknown>;
        strict?: boolean;
      };
    };

/** The body of `POST /v1/agent`. */
export type AgentParams = Omit<DocAgentIn, "tools" | "response_format"> & {
  tools?: AgentTool[] | null;
  response_format?: ResponseFormat | null;
};

/** One client tool call a `submit_tool_outputs` pause waits for. */
export interface FunctionToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

/** One call an `approve_tool_calls` pause waits for a decision on. */
export interface ApprovalToolCall {
  id: string;
  name: string;
  executor: S["Executor"];
  arguments: string;
  arguments_sha256: string;
}

export type RequiredAction =
  | { type: "submit_tool_outputs"; run_id: string; expires_at: string; tool_calls: FunctionToolCall[] }
  | { type: "approve_tool_calls"; run_id: string; expires_at: string; tool_calls: ApprovalToolCall[] };

/** A session's `required_action`, typed (the document describes it as any object). */
export function requiredAction(session: Session): RequiredAction | null {
  return (session.required_action ?? null) as RequiredAction | null;
}

/** `data` of the `run.delta` event: text as the model writes it. */
export interface RunDelta {
  run_id: string;
  step: number;
  text: string;
}

/**
 * One event of `GET /v1/sessions/{id}/events`, with `data` parsed from JSON. New event
 * names may appear in later API versions; they come through with their parsed data.
 */
export type StewrdEvent =
  | { id: string; event: `session.${SessionStatus}`; data: Session }
  | { id: string; event: "run.delta"; data: RunDelta }
  | { id: string; event: "run.step"; data: { run_id: string; step: Step } }
  | { id: string; event: "run.reset"; data: { run_id: string; step: number } };
