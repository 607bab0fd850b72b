/**
 * A server-sent events parser over a fetch body (the WHATWG "event stream
 * interpretation"), since `EventSource` cannot send an `Authorization` header and
 * Node has none. Only complete events (ended by a blank line) are yielded: an event cut
 * off by a dropped connection is never seen, and is replayed after `Last-Event-ID`.
 */

export interface SseMessage {
  /** `event:` field; "message" when absent, as the spec says. */
  event: string;
  data: string;
  /** `id:` of this event, or null when it had none. */
  id: string | null;
}

export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseMessage> {
  const reader = body.getReader();
  const decoder = new TextDecoder(); // strips a leading BOM, as the spec asks
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let id: string | null = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // Lines end with CRLF, LF or CR. A CR at the very end may be the first half of
      // a CRLF split across chunks, so it waits for the next chunk.
      let match: RegExpExecArray | null;
      const lineEnd = /\r\n|\n|\r(?!$)/g;
      let start = 0;
      while ((match = lineEnd.exec(buffer)) !== null) {
        const line = buffer.slice(start, match.index);
        start = match.index + match[0].length;
        if (line === "") {
          // Blank line: dispatch, unless no data came (then just reset, per the spec).
          if (data.length > 0) yield { event: event || "message", data: data.join("\n"), id };
          event = "";
          data = [];
          id = null;
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the server's heartbeat
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") event = val;
        else if (field === "data") data.push(val);
        else if (field === "id" && !val.includes("\0")) id = val;
        // `retry:` and unknown fields are ignored: reconnection is ours to pace.
      }
      buffer = buffer.slice(start);
      if (done) return; // a trailing event without its blank line is incomplete
    }
  } finally {
    // Stops the download when the consumer breaks out early.
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
