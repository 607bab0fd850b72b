/** The calling project's own settings (`/v1/project…`), with its API key. */
import { call, type QueryOf, type RequestOptions, type Transport } from "./http.js";
import type {
  McpServerIn,
  McpServersOut,
  McpToolsOut,
  Project,
  PutLlm,
  ServerTool,
  ToolsOut,
  UsageOut,
  WebhookSecret,
} from "./types.js";

export type UsageQuery = QueryOf<"get", "/v1/project/usage">;

export class ProjectApi {
  constructor(private readonly t: Transport) {}

  /** `GET /v1/project`: name, LLM settings, webhook, limits. */
  get(opts?: RequestOptions): Promise<Project> {
    return call(this.t, "get", "/v1/project", { auth: "project" }, opts);
  }

  /** `PUT /v1/project/llm`: provider, model and (write-only) key; omit `api_key` to keep it. */
  putLlm(llm: PutLlm, opts?: RequestOptions): Promise<Project> {
    return call(this.t, "put", "/v1/project/llm", { auth: "project", body: llm }, opts);
  }

  /** `DELETE /v1/project/llm`: forget the project's provider settings; the default applies. */
  deleteLlm(opts?: RequestOptions): Promise<Project> {
    return call(this.t, "delete", "/v1/project/llm", { auth: "project" }, opts);
  }

  /** `PUT /v1/project/webhook`: where events go, or `null` to stop sending them. */
  putWebhook(url: string | null, opts?: RequestOptions): Promise<Project> {
    return call(this.t, "put", "/v1/project/webhook", { auth: "project", body: { url } }, opts);
  }

  /** `POST /v1/project/webhook/secret`: a new `whsec_` secret, shown this once. */
  newWebhookSecret(opts?: RequestOptions): Promise<WebhookSecret> {
    return call(this.t, "post", "/v1/project/webhook/secret", { auth: "project" }, opts);
  }

  /** `GET /v1/project/tools`: the server tools. */
  tools(opts?: RequestOptions): Promise<ToolsOut> {
    return call(this.t, "get", "/v1/project/tools", { auth: "project" }, opts);
  }

  /** `PUT /v1/project/tools`: replaces the server tools (at most 32). */
  putTools(tools: ServerTool[], opts?: RequestOptions): Promise<ToolsOut> {
    return call(this.t, "put", "/v1/project/tools", { auth: "project", body: { tools } }, opts);
  }

  /** `GET /v1/project/mcp_servers` (header values are never shown, only names). */
  mcpServers(opts?: RequestOptions): Promise<McpServersOut> {
    return call(this.t, "get", "/v1/project/mcp_servers", { auth: "project" }, opts);
  }

  /** `PUT /v1/project/mcp_servers`: replaces the MCP servers (at most 8); does not connect. */
  putMcpServers(servers: McpServerIn[], opts?: RequestOptions): Promise<McpServersOut> {
    return call(this.t, "put", "/v1/project/mcp_servers", { auth: "project", body: { servers } }, opts);
  }

  /** `GET /v1/project/mcp_servers/{name}/tools`: connects now and lists the server's tools. */
  mcpServerTools(name: string, opts?: RequestOptions): Promise<McpToolsOut> {
    return call(
      this.t,
      "get",
      "/v1/project/mcp_servers/{name}/tools",
      { auth: "project", params: { name } },
      opts,
    );
  }

  /** `GET /v1/project/usage`: tokens, runs and cost per day or per model. */
  usage(query: UsageQuery = {}, opts?: RequestOptions): Promise<UsageOut> {
    return call(this.t, "get", "/v1/project/usage", { auth: "project", query }, opts);
  }
}
