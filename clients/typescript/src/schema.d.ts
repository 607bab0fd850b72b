/**
 * Generated from clients/openapi.json by scripts/generate.mjs (openapi-typescript).
 * Do not edit: run `npm run generate`; `npm run check-types` fails when this file
 * and the document disagree.
 */

export interface paths {
    "/dashboard/login": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Sign in to the dashboard with the admin token */
        post: operations["login"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Liveness */
        get: operations["healthz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/metrics": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Prometheus metrics
         * @description Open unless `STEWRD_METRICS_TOKEN` is set; then that token is required as a bearer.
         */
        get: operations["metrics"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Readiness: Postgres and RabbitMQ reachable */
        get: operations["readyz"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/prices": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Every model price in force (list and operator's), per million tokens */
        get: operations["admin_get_prices"];
        /** Set model prices (merged by provider and model); answers every price */
        put: operations["admin_put_prices"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Every project */
        get: operations["admin_list_projects"];
        put?: never;
        /** Create a project and its first API key */
        post: operations["create_project"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** One project */
        get: operations["admin_get_project"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/api-keys": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Issue another API key */
        post: operations["create_key"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/api-keys/{key_id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        post?: never;
        /** Revoke an API key */
        delete: operations["revoke_key"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/limits": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set a project's limits: rate, caps and budgets in tokens and dollars */
        put: operations["put_limits"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/llm": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A project's provider configuration (the project view) */
        get: operations["show_llm"];
        /** Set a project's provider, model and key */
        put: operations["admin_put_project_llm"];
        post?: never;
        /** Forget a project's provider configuration */
        delete: operations["admin_delete_project_llm"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/mcp_servers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A project's MCP servers */
        get: operations["admin_get_project_mcp_servers"];
        /** Replace a project's MCP servers */
        put: operations["admin_put_project_mcp_servers"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/mcp_servers/{name}/tools": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Connect to a project's MCP server now and list its tools */
        get: operations["admin_tools"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/rate-limit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set a project's requests-per-minute limit */
        put: operations["put_rate_limit"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/tools": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A project's server tools */
        get: operations["admin_get_project_tools"];
        /** Replace a project's server tools */
        put: operations["admin_put_project_tools"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/admin/projects/{id}/usage": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What a project used, by UTC day or by model */
        get: operations["admin_usage"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/agent": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Submit a message; answers at once */
        post: operations["create"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/files": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The project's files, newest first */
        get: operations["list_files"];
        put?: never;
        /** Upload a file (multipart/form-data: `file`, optional `purpose`) */
        post: operations["upload"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/files/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A file's metadata */
        get: operations["get_file"];
        put?: never;
        post?: never;
        /** Delete a file: gone from listings at once, its bytes from the store soon after */
        delete: operations["remove"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/files/{id}/content": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A file's bytes (`Range` honoured; always an attachment) */
        get: operations["content"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The calling project */
        get: operations["get_project"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project/llm": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set the provider, model and (write-only) key */
        put: operations["put_project_llm"];
        post?: never;
        /** Forget the provider configuration and key */
        delete: operations["delete_project_llm"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project/mcp_servers": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The project's MCP servers */
        get: operations["get_project_mcp_servers"];
        /**
         * Replace the project's MCP servers
         * @description Header values are stored sealed and never shown again; saving does not connect.
         */
        put: operations["put_project_mcp_servers"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project/mcp_servers/{name}/tools": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Connect to an MCP server now and list its tools */
        get: operations["tools"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project/tools": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The project's server tools */
        get: operations["get_project_tools"];
        /** Replace the project's server tools */
        put: operations["put_project_tools"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project/usage": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What the project used, by UTC day or by model */
        get: operations["project_usage"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project/webhook": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /** Set or clear the project's webhook URL */
        put: operations["put_webhook"];
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/project/webhook/secret": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A new signing secret, shown once */
        post: operations["new_webhook_secret"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The project's sessions, newest first */
        get: operations["list_sessions"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A session, optionally waiting for its result */
        get: operations["get_session"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/approvals": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Approve or deny the tool calls a run in requires_action waits on; the run goes on */
        post: operations["approvals"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/cancel": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Stop the queued or running message */
        post: operations["cancel"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/deliveries": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Webhook delivery attempts */
        get: operations["deliveries"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/deliveries/retry": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Send the latest event again */
        post: operations["retry_delivery"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Server-sent events: every event of the session, resumable */
        get: operations["events"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/files": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A session's files: inputs attached to its messages and its artifacts */
        get: operations["session_files"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/runs/{run_id}/steps": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** A run's committed steps: model calls and tool calls */
        get: operations["steps"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/sessions/{id}/tool_outputs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Answer the pending tool calls of a run in requires_action; the run goes on */
        post: operations["tool_outputs"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description The 202 answer. */
        AgentOut: {
            /** Format: date-time */
            created_at: string;
            run_id: components["schemas"]["RunId"];
            session_id: components["schemas"]["SessionId"];
            status: components["schemas"]["RunStatus"];
        };
        /**
         * Format: uuid
         * @description A project API key (its id, not the secret).
         */
        ApiKeyId: string;
        /** @description A decision, as kept on the step and shown in it. */
        Approval: {
            /** @description `api_key:<key id>` or `operator`. */
            by: string;
            /** Format: date-time */
            decided_at: string;
            decision: components["schemas"]["Verdict"];
            reason?: string | null;
        };
        /** @description The body of `POST /v1/sessions/{id}/approvals`. */
        ApprovalsIn: {
            /** @description One decision for every call awaiting approval, in one request. */
            decisions: components["schemas"]["DecisionIn"][];
        };
        /**
         * Format: binary
         * @description A file's bytes, as its content is answered.
         */
        Binary: string;
        /** @description The request body. `Serialize` gives its fingerprint for `Idempotency-Key`. */
        CreateAgentIn: {
            fallback_models?: string[] | null;
            /** @description Files attached to this message (at most 10; images, PDFs and text). */
            files?: components["schemas"]["FileId"][] | null;
            /**
             * Format: double
             * @description US dollars this run may spend at most: before each model call its
             *     worst case at the model's price is reserved against it (and against
             *     the project's `usd_per_day` / `usd_per_month`); a call that does not
             *     fit is not made (`cost_budget_exhausted`). A model without a known
             *     price is refused (`price_unknown`).
             */
            max_cost_usd?: number | null;
            /**
             * Format: int64
             * @description With a `json_schema` response format: how many times an answer that
             *     does not match is sent back to the model with what failed (0-10,
             *     default 2, counted in `max_steps`) before the run fails with
             *     `invalid_structured_output`.
             */
            max_repairs?: number | null;
            /**
             * Format: int64
             * @description Model calls at most (1-100, default 10).
             */
            max_steps?: number | null;
            /** Format: int64 */
            max_tokens?: number | null;
            /**
             * Format: int64
             * @description The run fails once its model calls used more tokens than this.
             */
            max_total_tokens?: number | null;
            /** @description The user's message (not blank). */
            message: string;
            metadata?: {
                [key: string]: string;
            } | null;
            model?: string | null;
            response_format?: null | {
                /** @enum {string} */
                type: "text" | "json_object" | "json_schema";
            };
            session_id?: null | components["schemas"]["SessionId"];
            /**
             * @description Stream the answer: `GET /v1/sessions/{id}/events` then carries its text
             *     as `run.delta` events while the model writes it.
             */
            stream?: boolean;
            system?: string | null;
            /** Format: double */
            temperature?: number | null;
            tool_choice?: null | ("auto" | "none" | "required") | {
                function: {
                    name: string;
                };
                /** @enum {string} */
                type: "function";
            };
            tools?: ({
                function: {
                    description?: string;
                    name: string;
                    parameters?: Record<string, unknown>;
                };
                /** @enum {string} */
                type: "function";
            } | {
                /** @enum {string} */
                type: "web_fetch";
            } | {
                /** @enum {string} */
                require_approval?: "never" | "always";
                /** @enum {string} */
                type: "browser";
            })[] | null;
            /**
             * Format: uri
             * @description Where to send this run's webhook (overrides the project's).
             */
            webhook_url?: string | null;
        };
        CreateProjectIn: {
            name: string;
        };
        /** @description A new API key (shown once). */
        CreatedKeyOut: {
            /** @description Shown this once. */
            api_key: string;
            /** Format: date-time */
            created_at: string;
            display_prefix: string;
            id: components["schemas"]["ApiKeyId"];
        };
        /** @description The new project and its first API key (shown once). */
        CreatedProjectOut: {
            /** @description Shown this once. */
            api_key: string;
            project: components["schemas"]["ProjectOut"];
        };
        /** @description A decision on one call. */
        DecisionIn: {
            approve: boolean;
            /**
             * @description Required to approve: the `arguments_sha256` that `required_action`
             *     shows for the call (an approval holds only for those arguments).
             */
            arguments_sha256?: string | null;
            /** @description Why (given to the model with a denial); at most 1,000 characters kept. */
            reason?: string | null;
            tool_call_id: string;
        };
        /** @description The answer to `DELETE /v1/files/{id}`. */
        DeletedOut: {
            deleted: boolean;
            id: components["schemas"]["FileId"];
        };
        /** @description Delivery attempts. */
        DeliveryList: {
            data: components["schemas"]["DeliveryOut"][];
        };
        /** @description One delivery attempt as `GET /v1/sessions/{id}/deliveries` shows it. */
        DeliveryOut: {
            /** Format: int32 */
            attempt: number;
            /** Format: date-time */
            attempted_at: string;
            /** Format: int32 */
            duration_ms: number;
            error?: string | null;
            event_id: string;
            /** Format: date-time */
            next_attempt_at?: string | null;
            /** Format: int32 */
            status_code?: number | null;
            type: components["schemas"]["EventType"];
            url: string;
        };
        /** @description What went wrong. */
        ErrorDetail: {
            /** @description A stable, machine-readable code (`missing_field`, `session_busy`, …). */
            code: string;
            message: string;
            /** @description The field or parameter at fault, if any. */
            param?: string | null;
            /**
             * @description `invalid_request_error`, `authentication_error`, `not_found_error`,
             *     `conflict_error`, `gone_error`, `rate_limit_error`, `service_unavailable_error` or `api_error`.
             */
            type: string;
        };
        /** @description Why a run failed. */
        ErrorOut: {
            code: components["schemas"]["FailureCode"];
            message: string;
        };
        /** @description The body of every error answer. */
        ErrorResponse: {
            error: components["schemas"]["ErrorDetail"];
        };
        /** @enum {string} */
        EventType: "session.requires_action" | "session.succeeded" | "session.failed" | "session.cancelled";
        /** @enum {string} */
        Executor: "server" | "client" | "mcp" | "builtin";
        /** @enum {string} */
        FailureCode: "provider_auth_failed" | "provider_bad_request" | "provider_model_not_found" | "provider_insufficient_credits" | "provider_rate_limited" | "provider_unavailable" | "provider_timeout" | "no_provider_configured" | "delivery_limit_exceeded" | "cancelled" | "max_steps_exceeded" | "max_total_tokens_exceeded" | "requires_action_expired" | "token_budget_exhausted" | "step_not_storable" | "mcp_server_unavailable" | "invalid_structured_output" | "cost_budget_exhausted" | "price_unknown" | "browser_unavailable";
        FileId: string;
        /** @description A page of files, newest first. */
        FileList: {
            data: components["schemas"]["FileOut"][];
            next_cursor?: null | components["schemas"]["FileId"];
        };
        /** @description A file as the API shows it. */
        FileOut: {
            /** Format: int64 */
            bytes: number;
            /** @description What the bytes are (sniffed), not what the client said. */
            content_type: string;
            /** Format: date-time */
            created_at: string;
            filename: string;
            id: components["schemas"]["FileId"];
            /** @description Always `file`. */
            object: string;
            purpose: components["schemas"]["Purpose"];
            run_id?: null | components["schemas"]["RunId"];
            session_id?: null | components["schemas"]["SessionId"];
            /** @description Of the plaintext, hex. */
            sha256: string;
        };
        /** @description A file a message carries. */
        FileRefOut: {
            content_type: string;
            filename: string;
            id: components["schemas"]["FileId"];
        };
        /** @enum {string} */
        KeySource: "project" | "default";
        /** @enum {string} */
        KeyStatus: "unchecked" | "valid" | "invalid" | "quota_exhausted";
        /** @description A project's limits; `None` is no limit. */
        Limits: {
            /** Format: int32 */
            max_concurrent_runs?: number | null;
            /** Format: int32 */
            max_queued_runs?: number | null;
            /** Format: int32 */
            requests_per_minute?: number | null;
            /** Format: int64 */
            tokens_per_day?: number | null;
            /** Format: int64 */
            tokens_per_month?: number | null;
            /**
             * Format: double
             * @description US dollars per UTC day, at list (or the operator's) prices.
             */
            usd_per_day?: number | null;
            /**
             * Format: double
             * @description US dollars per UTC calendar month.
             */
            usd_per_month?: number | null;
        };
        /**
         * @description The body of `PUT …/limits`: every limit at once; a missing or `null` one is
         *     no limit.
         */
        LimitsIn: {
            /**
             * Format: int64
             * @description Runs in flight at once, across all workers.
             */
            max_concurrent_runs?: number | null;
            /**
             * Format: int64
             * @description Queued runs at most; a submit beyond it gets 429 `too_many_queued_runs`.
             */
            max_queued_runs?: number | null;
            /**
             * Format: int64
             * @description Model calls per minute, across all workers.
             */
            requests_per_minute?: number | null;
            /**
             * Format: int64
             * @description Tokens per UTC day; then 429 `token_budget_exhausted`.
             */
            tokens_per_day?: number | null;
            /**
             * Format: int64
             * @description Tokens per UTC calendar month.
             */
            tokens_per_month?: number | null;
            /**
             * Format: double
             * @description US dollars per UTC day (cents allowed); then 429 `cost_budget_exhausted`.
             */
            usd_per_day?: number | null;
            /**
             * Format: double
             * @description US dollars per UTC calendar month.
             */
            usd_per_month?: number | null;
        };
        /** @description The provider configuration (never the key). */
        LlmOut: {
            /**
             * @description Models runs fall back to, in order, when the model is not found, or
             *     unavailable or rate limited after its retries.
             */
            fallback_models: string[];
            has_provider_key: boolean;
            key_status: components["schemas"]["KeyStatus"];
            model: string;
            /** @description The provider runs use: the project's own (with its key), or the default. */
            provider: components["schemas"]["Provider"];
        };
        /** @description One of a project's MCP servers, as stored and shown. */
        McpServer: {
            /** @description The tools offered; all when absent. */
            allowed_tools?: string[] | null;
            /**
             * @description The names of the headers sent with every request (their values are
             *     secrets: stored sealed, never shown).
             */
            headers: string[];
            name: string;
            require_approval: components["schemas"]["RequireApproval"];
            /**
             * Format: int32
             * @description One call's limit, 1 to 600 s.
             */
            timeout_secs: number;
            /** Format: uri */
            url: string;
        };
        /** @description One server as a client gives it: header values included. */
        McpServerIn: {
            allowed_tools?: string[] | null;
            /**
             * @description Sent with every request to the server (at most 16; values at most
             *     4096 bytes). Stored sealed; shown by name only.
             */
            headers?: {
                [key: string]: string;
            };
            /** @description `^[a-z0-9_-]{1,32}$`, unique in the project. */
            name: string;
            require_approval?: components["schemas"]["RequireApproval"];
            /**
             * Format: int32
             * @description 1 to 600 s (default 60).
             */
            timeout_secs?: number;
            /**
             * Format: uri
             * @description The server's Streamable HTTP endpoint (the webhook URL checks apply).
             */
            url: string;
        };
        /** @description The servers, replacing the project's. */
        McpServersIn: {
            /** @description At most 8. */
            servers: components["schemas"]["McpServerIn"][];
        };
        /** @description The project's MCP servers (headers by name only). */
        McpServersOut: {
            servers: components["schemas"]["McpServer"][];
        };
        /** @description A server's tools as the model would be offered them. */
        McpToolsOut: {
            /** @description `{"name": "<server>__<tool>", "description", "parameters"}`. */
            tools: Record<string, unknown>[];
        };
        /** @description One message of the conversation, in OpenAI's chat format. */
        MessageOut: {
            /** @description `null` for an assistant message that only calls tools. */
            content?: string | null;
            /** Format: date-time */
            created_at: string;
            /** @description The files a user message carries. */
            files?: components["schemas"]["FileRefOut"][] | null;
            /** @description `user`, `assistant` or `tool`. */
            role: components["schemas"]["Role"];
            /** @description The call a tool message answers. */
            tool_call_id?: string | null;
            /** @description The tool calls of an assistant message. */
            tool_calls?: Record<string, unknown>[] | null;
        };
        /** @description One price in force. */
        Price: {
            /**
             * Format: double
             * @description US dollars per million prompt tokens.
             */
            input_per_mtok: number;
            model: string;
            /**
             * Format: double
             * @description US dollars per million answer tokens.
             */
            output_per_mtok: number;
            provider: components["schemas"]["Provider"];
            /** @description `list` (stewrd's table) or `operator` (set with `PUT /v1/admin/prices`). */
            source: components["schemas"]["PriceSource"];
        };
        /** @description One price as the operator gives it. */
        PriceIn: {
            /** Format: double */
            input_per_mtok: number;
            model: string;
            /** Format: double */
            output_per_mtok: number;
            provider: components["schemas"]["Provider"];
        };
        /**
         * @description Where a price comes from.
         * @enum {string}
         */
        PriceSource: "list" | "operator";
        /** @description Prices to set: each replaces the one of its provider and model. */
        PricesIn: {
            prices: components["schemas"]["PriceIn"][];
        };
        /** @description Every price in force, by provider and model. */
        PricesOut: {
            prices: components["schemas"]["Price"][];
        };
        /**
         * Format: uuid
         * @description A project: the tenant that owns API keys, provider configuration and sessions.
         */
        ProjectId: string;
        /** @description Every project, newest first. */
        ProjectList: {
            data: components["schemas"]["ProjectOut"][];
        };
        /** @description A project as clients and the operator see it. */
        ProjectOut: {
            /** Format: date-time */
            created_at: string;
            id: components["schemas"]["ProjectId"];
            /** @description Rate limit, caps and token budgets (`null`: none). */
            limits: components["schemas"]["Limits"];
            llm: components["schemas"]["LlmOut"];
            name: string;
            rate_limit: components["schemas"]["RateLimitOut"];
            webhook: components["schemas"]["WebhookOut"];
        };
        /** @enum {string} */
        Provider: "openai" | "openrouter";
        /**
         * @description Why a file exists.
         * @enum {string}
         */
        Purpose: "input" | "artifact";
        /** @description The body of `PUT …/llm`. `Debug` shows the key as `[REDACTED]`. */
        PutLlmIn: {
            /** @description Write-only; omitted keeps the stored key. */
            api_key?: string | null;
            fallback_models?: string[] | null;
            model: string;
            provider: components["schemas"]["Provider"];
        };
        /** @description The body of `PUT /v1/project/webhook`. */
        PutWebhookIn: {
            /**
             * Format: uri
             * @description `http(s)://…`, or `null` to stop sending events.
             */
            url?: string | null;
        };
        RateLimitIn: {
            /**
             * Format: int64
             * @description Requests per minute; `null` removes the project's own limit.
             */
            requests_per_minute?: number | null;
        };
        /** @description The project's own limit (`null`: the default). */
        RateLimitOut: {
            /** Format: int32 */
            requests_per_minute?: number | null;
        };
        /** @enum {string} */
        RequireApproval: "never" | "always";
        /** @description The event made due again. */
        RetriedOut: {
            event_id: string;
            status: string;
        };
        /** @enum {string} */
        Role: "system" | "user" | "assistant" | "tool";
        /**
         * Format: uuid
         * @description One user message and its processing: the unit of work on the queue.
         */
        RunId: string;
        /** @description One run. */
        RunOut: {
            /** Format: int32 */
            attempts: number;
            /**
             * Format: double
             * @description What its model calls cost, in US dollars (`null`: no price known).
             */
            cost_usd?: number | null;
            /** Format: date-time */
            created_at: string;
            error?: null | components["schemas"]["ErrorOut"];
            /** Format: date-time */
            finished_at?: string | null;
            id: components["schemas"]["RunId"];
            /** Format: date-time */
            started_at?: string | null;
            status: components["schemas"]["RunStatus"];
        };
        /** @enum {string} */
        RunStatus: "queued" | "running" | "requires_action" | "succeeded" | "failed" | "cancelled";
        /** @description One of a project's server tools: stewrd calls `url` when the model asks. */
        ServerTool: {
            description?: string | null;
            /** @description `^[A-Za-z0-9_-]{1,64}$`, unique in the project. */
            name: string;
            /** @description A JSON Schema object for the arguments. */
            parameters?: Record<string, unknown>;
            /** @description Whether its calls wait for a person's yes (default `never`). */
            require_approval?: components["schemas"]["RequireApproval"];
            /**
             * Format: int32
             * @description One attempt's limit, 1 to 600 s (default 30).
             */
            timeout_secs?: number;
            /**
             * Format: uri
             * @description Where stewrd POSTs the call (the webhook URL checks apply; at most 2048
             *     characters as sent, answered in normalized form, which may be longer).
             */
            url: string;
        };
        /** @description One server-sent event (the OpenAPI description of the stream's items). */
        SessionEvent: {
            /** @description JSON. */
            data: string;
            /**
             * @description `session.<status>` (data: the session without messages, at that status),
             *     `run.step` (`{"run_id", "step": {…as in /steps…}}`), `run.reset`
             *     (`{"run_id", "step"}`: drop that step's deltas so far) or `run.delta`
             *     (`{"run_id", "step", "text"}`, only for runs submitted with `stream: true`).
             */
            event: string;
            /**
             * @description Increasing within the session (a whole number); send it back as
             *     `Last-Event-ID` to resume just after it.
             */
            id: string;
        };
        /**
         * Format: uuid
         * @description A conversation: a sequence of runs, one at a time.
         */
        SessionId: string;
        /** @description A session. */
        SessionOut: {
            /**
             * Format: double
             * @description What the latest run's model calls cost, in US dollars: the provider's
             *     reported cost (OpenRouter), else the tokens at the model's price;
             *     `null` when no price is known.
             */
            cost_usd?: number | null;
            /** Format: date-time */
            created_at: string;
            error?: null | components["schemas"]["ErrorOut"];
            id: components["schemas"]["SessionId"];
            key_source: components["schemas"]["KeySource"];
            /** @description The conversation; left out of lists and webhooks. */
            messages?: components["schemas"]["MessageOut"][] | null;
            /** @description The string map given with the messages. */
            metadata: {
                [key: string]: string;
            };
            model: string;
            /** @description The latest run's answer. */
            output?: string | null;
            /**
             * @description The latest run's answer parsed, when it had to match a `json_schema`
             *     response format (and did).
             */
            output_json?: Record<string, unknown> | null;
            provider: components["schemas"]["Provider"];
            /** @description While the latest run waits for the client's tool outputs: what to answer. */
            required_action?: Record<string, unknown> | null;
            /** @description Every run, oldest first; left out of lists. */
            runs?: components["schemas"]["RunOut"][] | null;
            status: components["schemas"]["RunStatus"];
            /** Format: date-time */
            updated_at: string;
            usage?: null | components["schemas"]["Usage"];
        };
        /** @description A page of sessions, newest first. */
        SessionPage: {
            data: components["schemas"]["SessionOut"][];
            next_cursor?: null | components["schemas"]["SessionId"];
        };
        /** @description The dashboard's sign-in form (described for the OpenAPI document). */
        SignInForm: {
            /** @description The admin token (`STEWRD_ADMIN_TOKEN`). */
            token: string;
        };
        /** @description A run's steps, in order. */
        StepList: {
            data: components["schemas"]["StepOut"][];
        };
        /** @description One step of a run, as `GET /v1/sessions/{id}/runs/{run_id}/steps` shows it. */
        StepOut: {
            approval?: null | components["schemas"]["Approval"];
            arguments?: string | null;
            /** Format: int32 */
            attempts?: number | null;
            /** @description A model call's text. */
            content?: string | null;
            executor?: null | components["schemas"]["Executor"];
            /** Format: date-time */
            finished_at?: string | null;
            /** Format: int32 */
            index: number;
            /** @description A model call's model. */
            model?: string | null;
            name?: string | null;
            output?: string | null;
            /** @description A final answer sent back for not matching the run's schema: what failed. */
            rejected?: string | null;
            /** @description The MCP server that ran the call (`executor: mcp`). */
            server?: string | null;
            /** Format: date-time */
            started_at: string;
            status: components["schemas"]["StepStatus"];
            tool_call_id?: string | null;
            /** @description A model call's tool calls. */
            tool_calls?: Record<string, unknown>[] | null;
            type: components["schemas"]["StepType"];
            usage?: null | components["schemas"]["Usage"];
        };
        /** @enum {string} */
        StepStatus: "pending" | "succeeded" | "failed";
        /** @enum {string} */
        StepType: "model_call" | "tool_call";
        /** @description The output of one tool call. */
        ToolOutputIn: {
            /** @description At most 64 KiB. */
            output: string;
            tool_call_id: string;
        };
        /** @description The body of `POST /v1/sessions/{id}/tool_outputs`. */
        ToolOutputsIn: {
            /** @description One output for every pending call, in one request. */
            tool_outputs: components["schemas"]["ToolOutputIn"][];
        };
        /** @description The server tools, in the order offered to the model. */
        ToolsIn: {
            /** @description At most 32; replaces the project's tools. */
            tools: components["schemas"]["ServerTool"][];
        };
        /** @description The project's server tools. */
        ToolsOut: {
            tools: components["schemas"]["ServerTool"][];
        };
        /** @description The upload form (described for the OpenAPI document). */
        UploadForm: {
            /**
             * Format: binary
             * @description The file's bytes (its part's file name is kept as `filename`).
             */
            file: string;
            /** @description `input` (the default). */
            purpose?: string | null;
        };
        /** @description Token counts reported by the provider. */
        Usage: {
            /** Format: int32 */
            completion_tokens: number;
            /** Format: int32 */
            prompt_tokens: number;
            /** Format: int32 */
            total_tokens: number;
        };
        /** @description One day's or one model's usage. */
        UsageLineOut: {
            /** Format: int64 */
            completion_tokens: number;
            /**
             * Format: double
             * @description What the calls cost in US dollars: OpenRouter's reported cost, else the
             *     tokens at the model's price (`GET /v1/admin/prices`); `null` while no
             *     call had a known price.
             */
            cost_usd?: number | null;
            /**
             * Format: date
             * @description The UTC day (`group_by=day`).
             */
            date?: string | null;
            /** @description The model (`group_by=model`). */
            model?: string | null;
            /** Format: int64 */
            prompt_tokens: number;
            /**
             * Format: int64
             * @description Runs that ended (succeeded, failed or cancelled).
             */
            runs: number;
            /** Format: int64 */
            total_tokens: number;
        };
        /** @description A project's usage: one line per day or per model. */
        UsageOut: {
            data: components["schemas"]["UsageLineOut"][];
        };
        /**
         * @description What a person decided.
         * @enum {string}
         */
        Verdict: "approved" | "denied";
        /** @description Where events go. */
        WebhookOut: {
            has_secret: boolean;
            url?: string | null;
        };
        /** @description A new signing secret, shown this once. */
        WebhookSecretOut: {
            secret: string;
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    login: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/x-www-form-urlencoded": components["schemas"]["SignInForm"];
            };
        };
        responses: {
            /** @description Signed in: the session cookie is set and the browser sent to /dashboard */
            303: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Not the admin token (the sign-in page again) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/html": string;
                };
            };
            /** @description Too many wrong admin tokens from this address: a wrong token waits the Retry-After seconds; the right one is always taken */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "text/html": string;
                };
            };
        };
    };
    healthz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The process is up */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, unknown>;
                };
            };
        };
    };
    metrics: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Prometheus text exposition */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/plain": string;
                };
            };
            /** @description `STEWRD_METRICS_TOKEN` is set and was not sent */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    readyz: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Ready */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, unknown>;
                };
            };
            /** @description Postgres or RabbitMQ unreachable */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": Record<string, unknown>;
                };
            };
        };
    };
    admin_get_prices: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The prices */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PricesOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_put_prices: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PricesIn"];
            };
        };
        responses: {
            /** @description The prices */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PricesOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_list_projects: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Projects */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectList"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    create_project: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateProjectIn"];
            };
        };
        responses: {
            /** @description Created */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CreatedProjectOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_get_project: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    create_key: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The key, shown once */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["CreatedKeyOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    revoke_key: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
                /** @description API key id */
                key_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Revoked */
            204: {
                headers: {
                    [name: string]: unknown;
                };
                content?: never;
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    put_limits: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["LimitsIn"];
            };
        };
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    show_llm: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_put_project_llm: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutLlmIn"];
            };
        };
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_delete_project_llm: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_get_project_mcp_servers: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The servers */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["McpServersOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_put_project_mcp_servers: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["McpServersIn"];
            };
        };
        responses: {
            /** @description The servers */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["McpServersOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_tools: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
                /** @description The server's name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The tools the model would be offered */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["McpToolsOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The server could not be listed (`mcp_server_error`) */
            502: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    put_rate_limit: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["RateLimitIn"];
            };
        };
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_get_project_tools: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The tools */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ToolsOut"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_put_project_tools: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ToolsIn"];
            };
        };
        responses: {
            /** @description The tools */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ToolsOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    admin_usage: {
        parameters: {
            query?: {
                /** @description First UTC day, `YYYY-MM-DD` (default: 29 days before `to`). */
                from?: string;
                /** @description Last UTC day, included (default: today). */
                to?: string;
                /** @description `day` (default) or `model`. */
                group_by?: string;
            };
            header?: never;
            path: {
                /** @description Project id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Usage */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["UsageOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing or wrong admin token */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description Too many wrong admin tokens from this address (`too_many_attempts`): a
             *     wrong token waits the Retry-After seconds; the right one is always taken
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    create: {
        parameters: {
            query?: never;
            header?: {
                /** @description Same key and body within 24 h: the same answer */
                "Idempotency-Key"?: string | null;
            };
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["CreateAgentIn"];
            };
        };
        responses: {
            /** @description Stored and queued */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AgentOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The session already has a queued or running message, or the Idempotency-Key is in use */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Idempotency-Key reused with another body */
            422: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /**
             * @description A limit of the project refuses it (`too_many_queued_runs`,
             *     `token_budget_exhausted`); retry after the Retry-After seconds
             */
            429: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    list_files: {
        parameters: {
            query?: {
                /** @description `input` or `artifact`. */
                purpose?: string;
                /** @description A session's files only. */
                session_id?: string;
                /** @description 1 to 100 (default 20). */
                limit?: number;
                /** @description The `next_cursor` of the previous page. */
                after?: components["schemas"]["FileId"];
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FileList"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    upload: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "multipart/form-data": components["schemas"]["UploadForm"];
            };
        };
        responses: {
            /** @description Stored */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FileOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description `file_too_large` or `storage_quota_exceeded` */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    get_file: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description File id (`file_…`) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The file */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FileOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    remove: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description File id (`file_…`) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Deleted */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeletedOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    content: {
        parameters: {
            query?: never;
            header?: {
                /** @description `bytes=a-b`, `bytes=a-` or `bytes=-n` */
                Range?: string | null;
            };
            path: {
                /** @description File id (`file_…`) */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The bytes */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": components["schemas"]["Binary"];
                };
            };
            /** @description The range asked for */
            206: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/octet-stream": components["schemas"]["Binary"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The range is past the end */
            416: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    get_project: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    put_project_llm: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutLlmIn"];
            };
        };
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    delete_project_llm: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    get_project_mcp_servers: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The servers (header values never shown) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["McpServersOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    put_project_mcp_servers: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["McpServersIn"];
            };
        };
        responses: {
            /** @description The servers */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["McpServersOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    tools: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The server's name */
                name: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The tools the model would be offered */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["McpToolsOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The server could not be listed (`mcp_server_error`) */
            502: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    get_project_tools: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The tools */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ToolsOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    put_project_tools: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ToolsIn"];
            };
        };
        responses: {
            /** @description The tools */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ToolsOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    project_usage: {
        parameters: {
            query?: {
                /** @description First UTC day, `YYYY-MM-DD` (default: 29 days before `to`). */
                from?: string;
                /** @description Last UTC day, included (default: today). */
                to?: string;
                /** @description `day` (default) or `model`. */
                group_by?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Usage */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["UsageOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    put_webhook: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutWebhookIn"];
            };
        };
        responses: {
            /** @description The project */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ProjectOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    new_webhook_secret: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The new secret; the previous one keeps signing for 24 h */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["WebhookSecretOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    list_sessions: {
        parameters: {
            query?: {
                /** @description Only sessions whose latest run has this status. */
                status?: components["schemas"]["RunStatus"];
                /** @description Sessions per page (1-100, default 20). */
                limit?: number;
                /** @description The `next_cursor` of the previous page. */
                after?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionPage"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    get_session: {
        parameters: {
            query?: {
                /** @description Seconds to wait for a final status (0-60). */
                wait?: number;
            };
            header?: never;
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The session */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    approvals: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ApprovalsIn"];
            };
        };
        responses: {
            /** @description The session, queued again */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The session is not waiting for approvals (`session_not_waiting`), or an approval quotes arguments that are not the call's (`approval_stale`) */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    cancel: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Cancelled */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Already final */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    deliveries: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Every attempt, oldest first */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeliveryList"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    retry_delivery: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description Due now, same webhook-id */
            202: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["RetriedOut"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The session has no webhook event */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    events: {
        parameters: {
            query?: never;
            header?: {
                /** @description Resume just after this event (kept 24 h after its run ends) */
                "Last-Event-ID"?: string | null;
            };
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description An event stream (`session.<status>`, `run.step`, `run.reset`, `run.delta`) */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": components["schemas"]["SessionEvent"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The events after `Last-Event-ID` are past their retention */
            410: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    session_files: {
        parameters: {
            query?: {
                /** @description 1 to 100 (default 20). */
                limit?: number;
                /** @description The `next_cursor` of the previous page. */
                after?: components["schemas"]["FileId"];
            };
            header?: never;
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description A page */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FileList"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    steps: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Session id */
                id: string;
                /** @description Run id */
                run_id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The steps, in order */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["StepList"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
    tool_outputs: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description Session id */
                id: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["ToolOutputsIn"];
            };
        };
        responses: {
            /** @description The session, queued again */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["SessionOut"];
                };
            };
            /** @description Invalid body or parameter */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Missing, invalid or revoked API key */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description No such resource (also for another project's) */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The session is not waiting for tool outputs */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description Body larger than 1 MiB */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
            /** @description The database is unavailable; retry after the Retry-After seconds */
            503: {
                headers: {
                    /** @description Seconds to wait */
                    "Retry-After"?: number;
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["ErrorResponse"];
                };
            };
        };
    };
}
