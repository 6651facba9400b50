// An incremental parser for text/event-stream (the WHATWG "event stream" rules): the edge
// streams a job's changes this way (GET /v1/jobs/{id}:events). EventSource cannot send an
// Authorization header, so the studio reads the stream with fetch and parses it here.

export interface ServerSentEvent {
  event: string;
  data: string;
  id: string | null;
}

export class SseDecoder {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private lastId: string | null = null;

  /** Feed decoded text; returns the events completed by it, in order. */
  push(text: string): ServerSentEvent[] {
    this.buffer += text;
    const events: ServerSentEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      if (match === null) break;
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (match[0] === "\r" && match.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const event = this.line(line);
      if (event !== null) events.push(event);
    }
    return events;
  }

  private line(line: string): ServerSentEvent | null {
    if (line === "") {
      if (this.data.length === 0) {
        this.event = "";
        return null;
      }
      const dispatched = {
        event: this.event || "message",
        data: this.data.join("\n"),
        id: this.lastId,
      };
      this.data = [];
      this.event = "";
      return dispatched;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    return null;
  }
}
