import { describe, expect, it, vi } from "vitest";
import { GouacheApi } from "./client";
import { ApiError } from "./errors";

type Handler = (url: string, init: RequestInit) => Response | Promise<Response>;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

const TOKEN = { access_token: "t1", token_type: "Bearer", expires_in: 900, scope: "" };

/** A fetch that answers the token exchange, then hands every other call to handler. */
function fakeFetch(handler: Handler) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fetchFn = vi.fn((input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    const request = init ?? {};
    calls.push({ url, init: request });
    if (url === "/v1/auth/token") return Promise.resolve(json(200, TOKEN));
    return Promise.resolve(handler(url, request));
  });
  return { fetchFn: fetchFn as unknown as typeof fetch, calls };
}

describe("GouacheApi errors", () => {
  it("carries the API's own message and code", async () => {
    const { fetchFn } = fakeFetch(() =>
      json(400, { code: 3, message: "params.alpha must be between 0 and 1, got 2", details: [] }),
    );
    const api = new GouacheApi("gk_test", fetchFn);

    const error = await api.createJob(
      { content_url: "c", style_urls: ["s"], model_version: "adain", params: { alpha: 2 }, lane: "export" },
      "k1",
    ).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).code).toBe("INVALID_ARGUMENT");
    expect((error as ApiError).message).toBe("params.alpha must be between 0 and 1, got 2");
  });

  it("refuses a wrong key with auth's message and asks to sign in again", async () => {
    const fetchFn = vi.fn(() =>
      Promise.resolve(json(401, { code: 16, message: "invalid API key", details: [] })),
    ) as unknown as typeof fetch;
    const api = new GouacheApi("gk_wrong", fetchFn);

    const error = (await api.whoAmI().catch((caught: unknown) => caught)) as ApiError;

    expect(error.status).toBe(401);
    expect(error.describe()).toBe("invalid API key (sign in again)");
  });

  it("shows a non-JSON error body as text, and an empty one as the status", async () => {
    const { fetchFn } = fakeFetch((url) =>
      url.startsWith("/v1/models")
        ? new Response("upstream connect error", { status: 503 })
        : new Response("", { status: 502, statusText: "Bad Gateway" }),
    );
    const api = new GouacheApi("gk_test", fetchFn);

    await expect(api.listModels()).rejects.toThrow("upstream connect error");
    await expect(api.whoAmI()).rejects.toThrow("HTTP 502 Bad Gateway");
  });

  it("turns a network failure into a message naming the API", async () => {
    const fetchFn = vi.fn(() => Promise.reject(new TypeError("Failed to fetch"))) as unknown as typeof fetch;
    const api = new GouacheApi("gk_test", fetchFn);

    const error = (await api.whoAmI().catch((caught: unknown) => caught)) as ApiError;

    expect(error.status).toBe(0);
    expect(error.message).toBe("cannot reach the gouache API (Failed to fetch)");
  });

  it("gets a fresh token once when the API says the token expired", async () => {
    let refused = false;
    const { fetchFn, calls } = fakeFetch(() => {
      if (!refused) {
        refused = true;
        return json(401, { code: 16, message: "token expired", details: [] });
      }
      return json(200, { user_id: "u1", email: "a@b.c", role: "user", scopes: [] });
    });
    const api = new GouacheApi("gk_test", fetchFn);

    const who = await api.whoAmI();

    expect(who.user_id).toBe("u1");
    expect(calls.filter((call) => call.url === "/v1/auth/token")).toHaveLength(2);
  });

  it("waits out a 429 with Retry-After and tries again", async () => {
    vi.useFakeTimers();
    try {
      let limited = true;
      const { fetchFn } = fakeFetch(() => {
        if (limited) {
          limited = false;
          return json(429, { code: 8, message: "rate limit exceeded", details: [] }, { "retry-after": "1" });
        }
        return json(200, { versions: [], routes: [] });
      });
      const api = new GouacheApi("gk_test", fetchFn);

      const answer = api.listModels();
      await vi.advanceTimersByTimeAsync(1000);

      await expect(answer).resolves.toEqual({ versions: [], routes: [] });
    } finally {
      vi.useRealTimers();
    }
  });

  it("gives up on a 429 whose wait is long, saying when to try again", async () => {
    const { fetchFn } = fakeFetch(() =>
      json(429, { code: 8, message: "rate limit of 60 requests per minute exceeded", details: [] }, { "retry-after": "40" }),
    );
    const api = new GouacheApi("gk_test", fetchFn);

    const error = (await api.listModels().catch((caught: unknown) => caught)) as ApiError;

    expect(error.describe()).toBe("rate limit of 60 requests per minute exceeded (try again in 40 s)");
  });
});

describe("GouacheApi uploads", () => {
  it("signs, then PUTs the bytes with their type, and returns the file_url", async () => {
    const { fetchFn, calls } = fakeFetch((url) =>
      url === "/v1/uploads/sign"
        ? json(200, { upload_url: "/v1/files/up?sig=x", file_url: "/v1/files/img_1", image_id: "img_1" })
        : new Response(JSON.stringify({ image_id: "img_1" }), { status: 201 }),
    );
    const api = new GouacheApi("gk_test", fetchFn);

    const url = await api.upload(new Blob(["png"], { type: "image/png" }), "cat.png", "content");

    expect(url).toBe("/v1/files/img_1");
    const sign = calls.find((call) => call.url === "/v1/uploads/sign");
    expect(JSON.parse(sign?.init.body as string)).toEqual({
      filename: "cat.png",
      content_type: "image/png",
      kind: "content",
    });
    const put = calls.find((call) => call.init.method === "PUT");
    expect(put?.url).toBe("/v1/files/up?sig=x");
    expect((put?.init.headers as Record<string, string>)["content-type"]).toBe("image/png");
  });

  it("reports storage's refusal of the bytes in storage's words", async () => {
    const { fetchFn } = fakeFetch((url) =>
      url === "/v1/uploads/sign"
        ? json(200, { upload_url: "/v1/files/up", file_url: "/v1/files/img_1", image_id: "img_1" })
        : json(400, { code: 3, message: "the file is not a PNG, JPEG or WebP image", details: [] }),
    );
    const api = new GouacheApi("gk_test", fetchFn);

    await expect(
      api.upload(new Blob(["text"], { type: "image/png" }), "notes.png", "content"),
    ).rejects.toThrow("the file is not a PNG, JPEG or WebP image");
  });
});

describe("GouacheApi.follow", () => {
  const job = (status: string, progress: number) => ({ job_id: "job_1", status, progress });

  it("reads the job's changes from the event stream", async () => {
    const events = [job("running", 0.5), job("succeeded", 1)]
      .map((update) => `data: ${JSON.stringify({ job: update })}\n\n`)
      .join("");
    const { fetchFn } = fakeFetch(
      () => new Response(events, { status: 200, headers: { "content-type": "text/event-stream" } }),
    );
    const api = new GouacheApi("gk_test", fetchFn);
    const seen: string[] = [];

    const final = await api.follow("job_1", (update) => seen.push(`${update.status} ${update.progress}`));

    expect(final.status).toBe("succeeded");
    expect(seen).toEqual(["running 0.5", "succeeded 1"]);
  });

  it("polls with :wait when the edge has no event stream", async () => {
    const answers = [job("running", 0.25), job("succeeded", 1)];
    const { fetchFn, calls } = fakeFetch((url) => {
      if (url.includes(":events")) return json(404, { code: 5, message: "no route", details: [] });
      return json(200, answers.shift());
    });
    const api = new GouacheApi("gk_test", fetchFn);
    const seen: string[] = [];

    const final = await api.follow("job_1", (update) => seen.push(update.status));

    expect(final.status).toBe("succeeded");
    expect(seen).toEqual(["running", "succeeded"]);
    expect(calls.some((call) => call.url === "/v1/jobs/job_1:wait?timeout=1s")).toBe(true);
  });

  it("does not poll around a refusal: another user's job stays refused", async () => {
    const { fetchFn } = fakeFetch(() =>
      json(403, { code: 7, message: "permission denied", details: [] }),
    );
    const api = new GouacheApi("gk_test", fetchFn);

    await expect(api.follow("job_1", () => undefined)).rejects.toThrow("permission denied");
  });
});
