/**
 * Verifying stewrd's webhooks and server-tool calls (Standard Webhooks): the
 * signature is `v1,<base64 HMAC-SHA256>` over `${webhook-id}.${webhook-timestamp}.${body}`,
 * keyed with the base64-decoded bytes after `whsec_`. `webhook-signature` may hold
 * several space-separated signatures (after a secret rotation the previous secret
 * keeps signing for 24 h); one match is enough.
 */
import { WebhookVerificationError } from "./errors.js";
import type { Session } from "./types.js";
import { base64ToBytes, bytesToBase64, webCrypto } from "./util.js";

/** The body of a webhook delivery. */
export interface WebhookEvent {
  type: "session.succeeded" | "session.failed" | "session.cancelled" | "session.requires_action";
  timestamp: string;
  /** The session as `GET /v1/sessions/{id}` returns it, without messages. */
  data: Session;
}

/** Headers as `fetch` (`Headers`) or Node's `http` (`req.headers`) give them. */
export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyOptions {
  /** How far the timestamp may be from now, in seconds (default 300). */
  toleranceSeconds?: number;
  /** "Now", for tests. */
  now?: Date;
}

/**
 * Checks a delivery and returns its parsed body. `body` must be the raw bytes or text
 * as received: parsing and re-serializing JSON changes it and breaks the signature.
 * Throws `WebhookVerificationError` when a header is missing, the timestamp is more
 * than `toleranceSeconds` away (a replay), or no signature matches.
 */
export async function verifyWebhook<T = WebhookEvent>(
  secret: string,
  headers: WebhookHeaders,
  body: string | Uint8Array | ArrayBuffer,
  opts: VerifyOptions = {},
): Promise<T> {
  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  if (!/^\d+$/.test(timestamp)) throw new WebhookVerificationError("invalid webhook-timestamp");
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const tolerance = opts.toleranceSeconds ?? 300;
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError("webhook-timestamp is too far from now");
  }

  const bytes = bodyBytes(body);
  const key = await hmacKey(secret, "verify");
  const signed = signedContent(id, timestamp, bytes);
  const subtle = (await webCrypto()).subtle;
  for (const candidate of signatures.split(" ")) {
    const [version, value] = candidate.split(",", 2);
    if (version !== "v1" || !value) continue;
    let expected: Uint8Array<ArrayBuffer>;
    try {
      expected = base64ToBytes(value);
    } catch {
      continue; // not base64: not a match
    }
    // subtle.verify compares in constant time, so timing reveals nothing of the MAC.
    if (await subtle.verify("HMAC", key, expected, signed)) {
      return JSON.parse(new TextDecoder().decode(bytes)) as T;
    }
  }
  throw new WebhookVerificationError("no matching signature");
}

/**
 * Signs a payload as stewrd does: returns the three headers. For testing a webhook
 * endpoint without a server.
 */
export async function signWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: string | Uint8Array | ArrayBuffer,
): Promise<Record<"webhook-id" | "webhook-timestamp" | "webhook-signature", string>> {
  const key = await hmacKey(secret, "sign");
  const ts = String(Math.floor(timestamp));
  const mac = await (await webCrypto()).subtle.sign("HMAC", key, signedContent(id, ts, bodyBytes(body)));
  return {
    "webhook-id": id,
    "webhook-timestamp": ts,
    "webhook-signature": `v1,${bytesToBase64(new Uint8Array(mac))}`,
  };
}

function header(headers: WebhookHeaders, name: string): string | null {
  if (headers instanceof Headers) return headers.get(name);
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === wanted && v !== undefined) return Array.isArray(v) ? v.join(" ") : v;
  }
  return null;
}

function bodyBytes(body: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof body === "string") return new TextEncoder().encode(body);
  return body instanceof ArrayBuffer ? new Uint8Array(body) : body;
}

function signedContent(id: string, timestamp: string, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const out = new Uint8Array(prefix.length + body.length);
  out.set(prefix);
  out.set(body, prefix.length);
  return out;
}

async function hmacKey(secret: string, usage: "sign" | "verify"): Promise<CryptoKey> {
  const raw = base64ToBytes(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret);
  return (await webCrypto()).subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
}
