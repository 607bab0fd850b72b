/**
 * Test helpers: the server under test, a project per test, and proxies that sit
 * between the client and the server to break things on purpose.
 */
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { Stewrd } from "@stewrd/client";

export const SERVER_URL = (process.env.STEWRD_TEST_URL ?? "http://127.0.0.1:18080").replace(/\/+$/, "");
export const ADMIN_TOKEN = process.env.STEWRD_TEST_ADMIN_TOKEN ?? "dev-admin-token";

export interface TestProject {
  projectId: string;
  apiKey: string;
  /** A client of the project, straight to the server. */
  client: Stewrd;
}

/** A fresh project (so tests never see each other's sessions or files). */
export async function newProject(label: string): Promise<TestProject> {
  const admin = new Stewrd({ baseUrl: SERVER_URL, adminToken: ADMIN_TOKEN });
  const created = await admin.admin.createProject(`ts-client-${label}-${Date.now()}`);
  return {
    projectId: created.project.id,
    apiKey: created.api_key,
    client: new Stewrd({ baseUrl: SERVER_URL, apiKey: created.api_key }),
  };
}

export function words(n: number): string {
  return Array.from({ length: n }, (_, i) => `word${i}`).join(" ");
}

// ---- HTTP proxy ---------------------------------------------------------------------

export interface ProxiedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** When the proxy had the whole request (ms, `performance.now()`). */
  at: number;
}

/** What the proxy does with one request. */
export type Verdict =
  | { kind: "forward" }
  /** Forward, wait for the server's whole answer, then cut the client's connection. */
  | { kind: "forward-then-drop" }
  | { kind: "respond"; status: number; headers?: Record<string, string>; body?: string }
  /** Forward, pass on the first `bytes` of the answer's body, the rest once `release` resolves. */
  | { kind: "forward-stalled"; bytes: number; release: Promise<void> };

export interface HttpProxy {
  url: string;
  requests: ProxiedRequest[];
  /** When each `respond` verdict's answer was written, by request index. */
  respondedAt: Map<number, number>;
  close(): Promise<void>;
}

/**
 * An HTTP proxy to the server; `decide` sees each request (with its index among all
 * requests the proxy got) and says what to do with it.
 */
export async function startHttpProxy(
  decide: (req: ProxiedRequest, index: number) => Verdict,
): Promise<HttpProxy> {
  const requests: ProxiedRequest[] = [];
  const respondedAt = new Map<number, number>();
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const recorded: ProxiedRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: req.headers,
      body: Buffer.concat(chunks),
      at: performance.now(),
    };
    const index = requests.push(recorded) - 1;
    const verdict = decide(recorded, index);
    if (verdict.kind === "respond") {
      res.writeHead(verdict.status, { "content-type": "application/json", ...verdict.headers });
      res.end(verdict.body ?? "");
      respondedAt.set(index, performance.now());
      return;
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined || ["host", "connection", "content-length", "keep-alive"].includes(k)) continue;
      headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    }
    const upstream = await fetch(SERVER_URL + recorded.path, {
      method: recorded.method,
      headers,
      ...(recorded.body.length > 0 ? { body: new Uint8Array(recorded.body) } : {}),
    });
    const answer = Buffer.from(await upstream.arrayBuffer());
    if (verdict.kind === "forward-then-drop") {
      req.socket.destroy(); // the server acted; the client never hears of it
      return;
    }
    const out: Record<string, string> = {};
    upstream.headers.forEach((v, k) => {
      if (!["content-length", "transfer-encoding", "connection", "content-encoding"].includes(k)) out[k] = v;
    });
    if (verdict.kind === "forward-stalled") {
      out["content-length"] = String(answer.length);
      res.writeHead(upstream.status, out);
      res.write(answer.subarray(0, verdict.bytes));
      await verdict.release;
      res.end(answer.subarray(verdict.bytes));
      return;
    }
    res.writeHead(upstream.status, out);
    res.end(answer);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    respondedAt,
    close: () => closeServer(server),
  };
}

// ---- TCP proxy ----------------------------------------------------------------------

export interface TcpProxy {
  url: string;
  /** Per connection: what the client sent (request heads, as text). */
  clientBytes: string[];
  connections(): number;
  close(): Promise<void>;
}

/**
 * A byte-level proxy to the server. For the first connection, `cutAt` is asked, as
 * server bytes arrive, where to cut that connection (an offset into all the bytes the
 * server sent on it, or null for "not yet"): the bytes before the offset are passed on,
 * then both sides are destroyed, as a network failure would.
 */
export async function startTcpProxy(cutAt: (serverBytes: string) => number | null): Promise<TcpProxy> {
  const target = new URL(SERVER_URL);
  const clientBytes: string[] = [];
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const conn = count++;
    clientBytes[conn] = "";
    const upstream = net.connect(Number(target.port || 80), target.hostname);
    sockets.add(client).add(upstream);
    let seen = Buffer.alloc(0);
    let cut = false;
    client.on("data", (d: Buffer) => {
      clientBytes[conn] += d.toString("latin1");
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (cut) return;
      const before = seen.length;
      seen = Buffer.concat([seen, d]);
      const at = conn === 0 ? cutAt(seen.toString("latin1")) : null;
      if (at !== null && at < seen.length) {
        cut = true;
        if (at > before) client.write(d.subarray(0, at - before));
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    clientBytes,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
  };
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    (server as http.Server).closeAllConnections?.();
    server.close(() => resolve());
  });
}
