/** The operator's calls (`/v1/admin/…`), with the client's `adminToken`. */
import { call, type QueryOf, type RequestOptions, type Transport } from "./http.js";
import type {
  CreatedKey,
  CreatedProject,
  Limits,
  McpServerIn,
  McpServersOut,
  McpToolsOut,
  PriceIn,
  PricesOut,
  Project,
  ProjectList,
  PutLlm,
  RateLimit,
  ServerTool,
  ToolsOut,
  UsageOut,
} from "./types.js";

export type AdminUsageQuery = QueryOf<"get", "/v1/admin/projects/{id}/usage">;

export class Admin {
  constructor(private readonly t: Transport) {}

  /** `GET /v1/admin/projects`: every project, newest first. */
  listProjects(opts?: RequestOptions): Promise<ProjectList> {
    return call(this.t, "get", "/v1/admin/projects", { auth: "admin" }, opts);
  }

  /** `POST /v1/admin/projects`: the project and its first API key (shown once). */
  createProject(name: string, opts?: RequestOptions): Promise<CreatedProject> {
    return call(this.t, "post", "/v1/admin/projects", { auth: "admin", body: { name } }, opts);
  }

  /** `GET /v1/admin/projects/{id}`. */
  getProject(projectId: string, opts?: RequestOptions): Promise<Project> {
    return call(this.t, "get", "/v1/admin/projects/{id}", { auth: "admin", params: { id: projectId } }, opts);
  }

  /** `POST /v1/admin/projects/{id}/api-keys`: a new key, shown once. */
  createApiKey(projectId: string, opts?: RequestOptions): Promise<CreatedKey> {
    return call(
      this.t,
      "post",
      "/v1/admin/projects/{id}/api-keys",
      { auth: "admin", params: { id: projectId } },
      opts,
    );
  }

  /** `DELETE /v1/admin/projects/{id}/api-keys/{key_id}`: revokes a key at once. */
  async revokeApiKey(projectId: string, keyId: string, opts?: RequestOptions): Promise<void> {
    await call(
      this.t,
      "delete",
      "/v1/admin/projects/{id}/api-keys/{key_id}",
      { auth: "admin", params: { id: projectId, key_id: keyId } },
      opts,
    );
  }

  /** `PUT /v1/admin/projects/{id}/limits`: every limit at once; a missing one is none. */
  putLimits(projectId: string, limits: Limits, opts?: RequestOptions): Promise<Project> {
    return call(
      this.t,
      "put",
      "/v1/admin/projects/{id}/limits",
      { auth: "admin", params: { id: projectId }, body: limits },
      opts,
    );
  }

  /** `PUT /v1/admin/projects/{id}/rate-limit`: model calls per minute (`null`: the default). */
  putRateLimit(projectId: string, rateLimit: RateLimit, opts?: RequestOptions): Promise<Project> {
    return call(
      this.t,
      "put",
      "/v1/admin/projects/{id}/rate-limit",
      { auth: "admin", params: { id: projectId }, body: rateLimit },
      opts,
    );
  }

  /** `GET /v1/admin/projects/{id}/llm`. */
  getLlm(projectId: string, opts?: RequestOptions): Promise<Project> {
    return call(this.t, "get", "/v1/admin/projects/{id}/llm", { auth: "admin", params: { id: projectId } }, opts);
  }

  /** `PUT /v1/admin/projects/{id}/llm`. */
  putLlm(projectId: string, llm: PutLlm, opts?: RequestOptions): Promise<Project> {
    return call(
      this.t,
      "put",
      "/v1/admin/projects/{id}/llm",
      { auth: "admin", params: { id: projectId }, body: llm },
      opts,
    );
  }

  /** `DELETE /v1/admin/projects/{id}/llm`: the default provider applies again. */
  deleteLlm(projectId: string, opts?: RequestOptions): Promise<Project> {
    return call(this.t, "delete", "/v1/admin/projects/{id}/llm", { auth: "admin", params: { id: projectId } }, opts);
  }

  /** `GET /v1/admin/projects/{id}/tools`. */
  tools(projectId: string, opts?: RequestOptions): Promise<ToolsOut> {
    return call(this.t, "get", "/v1/admin/projects/{id}/tools", { auth: "admin", params: { id: projectId } }, opts);
  }

  /** `PUT /v1/admin/projects/{id}/tools`: replaces the project's server tools. */
  putTools(projectId: string, tools: ServerTool[], opts?: RequestOptions): Promise<ToolsOut> {
    return call(
      this.t,
      "put",
      "/v1/admin/projects/{id}/tools",
      { auth: "admin", params: { id: projectId }, body: { tools } },
      opts,
    );
  }

  /** `GET /v1/admin/projects/{id}/mcp_servers`. */
  mcpServers(projectId: string, opts?: RequestOptions): Promise<McpServersOut> {
    return call(
      this.t,
      "get",
      "/v1/admin/projects/{id}/mcp_servers",
      { auth: "admin", params: { id: projectId } },
      opts,
    );
  }

  /** `PUT /v1/admin/projects/{id}/mcp_servers`: replaces the project's MCP servers. */
  putMcpServers(projectId: string, servers: McpServerIn[], opts?: RequestOptions): Promise<McpServersOut> {
    return call(
      this.t,
      "put",
      "/v1/admin/projects/{id}/mcp_servers",
      { auth: "admin", params: { id: projectId }, body: { servers } },
      opts,
    );
  }

  /** `GET /v1/admin/projects/{id}/mcp_servers/{name}/tools`: connects and lists. */
  mcpServerTools(projectId: string, name: string, opts?: RequestOptions): Promise<McpToolsOut> {
    return call(
      this.t,
      "get",
      "/v1/admin/projects/{id}/mcp_servers/{name}/tools",
      { auth: "admin", params: { id: projectId, name } },
      opts,
    );
  }

  /** `GET /v1/admin/projects/{id}/usage`. */
  usage(projectId: string, query: AdminUsageQuery = {}, opts?: RequestOptions): Promise<UsageOut> {
    return call(
      this.t,
      "get",
      "/v1/admin/projects/{id}/usage",
      { auth: "admin", params: { id: projectId }, query },
      opts,
    );
  }

  /** `GET /v1/admin/prices`: every price in force. */
  prices(opts?: RequestOptions): Promise<PricesOut> {
    return call(this.t, "get", "/v1/admin/prices", { auth: "admin" }, opts);
  }

  /** `PUT /v1/admin/prices`: merges by provider and model; answers the whole table. */
  putPrices(prices: PriceIn[], opts?: RequestOptions): Promise<PricesOut> {
    return call(this.t, "put", "/v1/admin/prices", { auth: "admin", body: { prices } }, opts);
  }
}
