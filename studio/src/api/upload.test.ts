import { afterEach, describe, expect, it, vi } from "vitest";
import { GouacheApi } from "./client";

/** Just enough of XMLHttpRequest: each send reports half, then all, then answers. */
class FakeXhr {
  static answer = { status: 201, text: "{}" };
  static sent: { method: string; url: string; type: string | undefined }[] = [];
  upload: { onprogress: ((event: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  status = 0;
  statusText = "";
  responseText = "";
  private method = "";
  private url = "";
  private type: string | undefined;

  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }

  setRequestHeader(name: string, value: string) {
    if (name === "content-type") this.type = value;
  }

  getResponseHeader(): string | null {
    return null;
  }

  send(body: Blob) {
    FakeXhr.sent.push({ method: this.method, url: this.url, type: this.type });
    const total = body.size;
    for (const loaded of [total / 2, total]) {
      this.upload.onprogress?.({ lengthComputable: true, loaded, total } as ProgressEvent);
    }
    this.status = FakeXhr.answer.status;
    this.responseText = FakeXhr.answer.text;
    this.onload?.();
  }
}

function fetchFn(): typeof fetch {
  return vi.fn((input: RequestInfo | URL) => {
    const url = input instanceof Request ? input.url : String(input);
    const body =
      url === "/v1/auth/token"
        ? { access_token: "t", token_type: "Bearer", expires_in: 900, scope: "" }
        : { upload_url: "/v1/files/img_1?sig=s", file_url: "/v1/files/img_1", image_id: "img_1" };
    return Promise.resolve(new Response(JSON.stringify(body), { status: 200 }));
  });
}

afterEach(() => {
  vi.unstubAllGlobals();
  FakeXhr.sent = [];
});

describe("GouacheApi.upload with progress", () => {
  it("reports the share of bytes sent and returns the file_url", async () => {
    vi.stubGlobal("XMLHttpRequest", FakeXhr);
    FakeXhr.answer = { status: 201, text: "{}" };
    const seen: number[] = [];

    const url = await new GouacheApi("gk_test", fetchFn()).upload(
      new Blob(["0123456789"], { type: "image/png" }),
      "cat.png",
      "content",
      (fraction) => seen.push(fraction),
    );

    expect(url).toBe("/v1/files/img_1");
    expect(seen).toEqual([0.5, 1, 1]);
    expect(FakeXhr.sent).toEqual([{ method: "PUT", url: "/v1/files/img_1?sig=s", type: "image/png" }]);
  });

  it("rejects with storage's own words when it refuses the bytes", async () => {
    vi.stubGlobal("XMLHttpRequest", FakeXhr);
    FakeXhr.answer = {
      status: 415,
      text: JSON.stringify({ code: 3, message: "the bytes are not a PNG, JPEG or WebP image", details: [] }),
    };

    const upload = new GouacheApi("gk_test", fetchFn()).upload(
      new Blob(["notes"], { type: "image/png" }),
      "notes.png",
      "content",
      () => undefined,
    );

    await expect(upload).rejects.toMatchObject({
      status: 415,
      code: "INVALID_ARGUMENT",
      message: "the bytes are not a PNG, JPEG or WebP image",
    });
  });
});
