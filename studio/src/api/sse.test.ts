import { describe, expect, it } from "vitest";
import { SseDecoder } from "./sse";

describe("SseDecoder", () => {
  it("joins an event split across chunks, in any line ending", () => {
    const decoder = new SseDecoder();

    expect(decoder.push('data: {"a"')).toEqual([]);
    expect(decoder.push(":1}\r")).toEqual([]);
    expect(decoder.push("\n\r\n")).toEqual([{ event: "message", data: '{"a":1}', id: null }]);
  });

  it("keeps event names and ids, joins data lines and skips comments", () => {
    const decoder = new SseDecoder();

    const events = decoder.push(": keep-alive\nevent: job\nid: 7\ndata: one\ndata:two\n\n");

    expect(events).toEqual([{ event: "job", data: "one\ntwo", id: "7" }]);
  });

  it("dispatches nothing for an event without data", () => {
    const decoder = new SseDecoder();

    expect(decoder.push("event: ping\n\ndata: x\n\n")).toEqual([
      { event: "message", data: "x", id: null },
    ]);
  });
});
