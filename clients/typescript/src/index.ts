/**
 * @stewrd/client: the TypeScript client of stewrd's API v1 (durable AI agent runs).
 * ESM, no dependencies: `fetch`, streams and Web Crypto of Node 18+ and browsers.
 */
export { Stewrd, type StewrdOptions, type AgentOptions } from "./client.js";
export { StewrdError, WebhookVerificationError } from "./errors.js";
export type { RequestOptions } from "./http.js";
export type { EventsOptions } from "./events.js";
export type { WaitOptions, RunToolsOptions, ToolHandler, PageQuery, Sessions } from "./sessions.js";
export type { UploadOptions, FileListQuery, FileContent, Files } from "./files.js";
export type { Uploadable } from "./multipart.js";
export type { ProjectApi, UsageQuery } from "./project.js";
export type { Admin, AdminUsageQuery } from "./admin.js";
export {
  verifyWebhook,
  signWebhook,
  type WebhookEvent,
  type WebhookHeaders,
  type VerifyOptions,
} from "./webhooks.js";
export * from "./types.js";
export type { paths, components } from "./schema.js";
