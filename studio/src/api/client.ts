// The studio's REST client: every call goes to the API on the same origin as the page.
import { ApiError, errorFrom, errorOf, networkError } from "./errors";
import { SseDecoder } from "./sse";
import {
  FINAL_STATUSES,
  type CreateJobRequest,
  type CreateJobResponse,
  type Feedback,
  type Job,
  type ListJobsResponse,
  type ListModelsResponse,
  type ModelVersionStats,
  type SignUploadResponse,
  type Style,
  type UsageRecord,
  type WhoAmI,
} from "./types";

type Fetch = typeof fetch;

interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Calls that need no token (exchanging the API key for one). */
  anonymous?: boolean;
}

// A token is renewed this long before it expires.
const TOKEN_MARGIN_MS = 30_000;
// 429s with a Retry-After up to this long are waited out, at most MAX_RETRIES times.
const MAX_RETRY_WAIT_S = 5;
const MAX_RETRIES = 3;
// How long one GET :wait holds while following a job without the event stream.
const POLL_WAIT_S = 1;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

export class GouacheApi {
  private token: { value: string; expiresAt: number } | null = null;

  constructor(
    readonly apiKey: string,
    private readonly fetchFn: Fetch = (input, init) => fetch(input, init),
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** A bearer token for the API key (POST /v1/auth/token), renewed before it expires. */
  async accessToken(signal?: AbortSignal): Promise<string> {
    if (this.token !== null && this.token.expiresAt - TOKEN_MARGIN_MS > this.now()) {
      return this.token.value;
    }
    const issued = await this.request<{ access_token: string; expires_in: number }>(
      "POST",
      "/v1/auth/token",
      {
        body: { grant_type: "client_credentials", api_key: this.apiKey },
        anonymous: true,
        ...(signal ? { signal } : {}),
      },
    );
    this.token = {
      value: issued.access_token,
      expiresAt: this.now() + issued.expires_in * 1000,
    };
    return issued.access_token;
  }

  whoAmI(): Promise<WhoAmI> {
    return this.request("GET", "/v1/auth/whoami");
  }

  listModels(): Promise<ListModelsResponse> {
    return this.request("GET", "/v1/models");
  }

  async listStyles(curated: boolean): Promise<Style[]> {
    const styles: Style[] = [];
    let pageToken = "";
    do {
      const page = await this.request<{ styles: Style[]; next_page_token: string }>(
        "GET",
        "/v1/styles",
        { query: { curated, page_size: 100, page_token: pageToken || undefined } },
      );
      styles.push(...page.styles);
      pageToken = page.next_page_token;
    } while (pageToken);
    return styles;
  }

  /** Uploads an image through a signed URL; returns the file_url that jobs accept. With
   * onProgress, the bytes go by XMLHttpRequest, which reports how many have been sent. */
  async upload(
    file: Blob,
    filename: string,
    kind: "content" | "style",
    onProgress?: (fraction: number) => void,
  ): Promise<string> {
    const signed = await this.request<SignUploadResponse>("POST", "/v1/uploads/sign", {
      body: { filename, content_type: file.type, kind },
    });
    if (onProgress !== undefined && typeof XMLHttpRequest !== "undefined") {
      await putWithProgress(signed.upload_url, file, onProgress);
      return signed.file_url;
    }
    let response: Response;
    try {
      response = await this.fetchFn(signed.upload_url, {
        method: "PUT",
        body: file,
        headers: { "content-type": file.type },
      });
    } catch (error) {
      throw networkError(error);
    }
    if (!response.ok) throw await errorFrom(response);
    return signed.file_url;
  }

  /** An image the API serves only with the bearer token (an unsigned file_url). */
  async fetchImage(url: string, signal?: AbortSignal): Promise<Blob> {
    const token = await this.accessToken(signal);
    let response: Response;
    try {
      response = await this.fetchFn(url, {
        headers: { authorization: `Bearer ${token}` },
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      throw networkError(error);
    }
    if (!response.ok) throw await errorFrom(response);
    return response.blob();
  }

  createJob(job: CreateJobRequest, idempotencyKey: string): Promise<CreateJobResponse> {
    return this.request("POST", "/v1/jobs", {
      body: job,
      headers: { "idempotency-key": idempotencyKey },
    });
  }

  getJob(jobId: string, signal?: AbortSignal): Promise<Job> {
    return this.request("GET", `/v1/jobs/${encodeURIComponent(jobId)}`, signal ? { signal } : {});
  }

  /** The job once it is final, or as it is when timeoutS passes (GET /v1/jobs/{id}:wait). */
  waitJob(jobId: string, timeoutS: number, signal?: AbortSignal): Promise<Job> {
    return this.request("GET", `/v1/jobs/${encodeURIComponent(jobId)}:wait`, {
      query: { timeout: `${timeoutS}s` },
      ...(signal ? { signal } : {}),
    });
  }

  cancelJob(jobId: string): Promise<Job> {
    return this.request("POST", `/v1/jobs/${encodeURIComponent(jobId)}:cancel`, { body: {} });
  }

  listJobs(pageToken: string, pageSize: number, status = ""): Promise<ListJobsResponse> {
    return this.request("GET", "/v1/jobs", {
      query: { page_size: pageSize, page_token: pageToken || undefined, status: status || undefined },
    });
  }

  submitFeedback(jobId: string, rating: number, comments = ""): Promise<Feedback> {
    return this.request("POST", "/v1/feedback", { body: { job_id: jobId, rating, comments } });
  }

  async modelStats(): Promise<ModelVersionStats[]> {
    const answer = await this.request<{ stats: ModelVersionStats[] }>("GET", "/v1/feedback/stats");
    return answer.stats;
  }

  async usage(): Promise<UsageRecord[]> {
    const answer = await this.request<{ usage: UsageRecord[] }>("GET", "/v1/usage");
    return answer.usage;
  }

  /** Follows a job to its final state, calling onUpdate with each change: from the event
   * stream (GET /v1/jobs/{id}:events) while the edge offers it, else by short long-polls. */
  async follow(jobId: string, onUpdate: (job: Job) => void, signal?: AbortSignal): Promise<Job> {
    try {
      const last = await this.stream(jobId, onUpdate, signal);
      if (last !== null && FINAL_STATUSES.has(last.status)) return last;
    } catch (error) {
      if (signal?.aborted) throw error;
      // No stream at this edge (404, 415), or a cut connection: poll instead, which reports
      // the same changes less promptly. A refusal (401, 403, 400) stands.
      const fallBack =
        !(error instanceof ApiError) || [0, 404, 415].includes(error.status) || error.status >= 500;
      if (!fallBack) throw error;
    }
    for (;;) {
      const job = await this.waitJob(jobId, POLL_WAIT_S, signal);
      onUpdate(job);
      if (FINAL_STATUSES.has(job.status)) return job;
    }
  }

  private async stream(
    jobId: string,
    onUpdate: (job: Job) => void,
    signal?: AbortSignal,
  ): Promise<Job | null> {
    const token = await this.accessToken(signal);
    let response: Response;
    try {
      response = await this.fetchFn(`/v1/jobs/${encodeURIComponent(jobId)}:events`, {
        headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw networkError(error);
    }
    if (!response.ok) throw await errorFrom(response);
    const type = response.headers.get("content-type") ?? "";
    if (!type.startsWith("text/event-stream") || response.body === null) {
      await response.body?.cancel();
      throw new ApiError(415, "the edge does not stream job events", "UNSUPPORTED");
    }
    const decoder = new SseDecoder();
    const text = new TextDecoder();
    const reader = response.body.getReader();
    let last: Job | null = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const event of decoder.push(text.decode(value, { stream: true }))) {
          const update = parseUpdate(event.data);
          if (update !== null) {
            last = update;
            onUpdate(update);
          }
        }
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      // A cut after some events: the caller polls from the last state.
    }
    return last;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    for (let attempt = 0; ; attempt += 1) {
      const headers: Record<string, string> = { accept: "application/json", ...options.headers };
      if (!options.anonymous) {
        headers.authorization = `Bearer ${await this.accessToken(options.signal)}`;
      }
      const init: RequestInit = { method, headers };
      if (options.body !== undefined) {
        init.body = JSON.stringify(options.body);
        headers["content-type"] = "application/json";
      }
      if (options.signal) init.signal = options.signal;
      let response: Response;
      try {
        response = await this.fetchFn(withQuery(path, options.query), init);
      } catch (error) {
        if (options.signal?.aborted) throw error;
        throw networkError(error);
      }
      if (response.ok) return (await response.json()) as T;
      const error = await errorFrom(response);
      if (response.status === 401 && !options.anonymous && this.token !== null && attempt === 0) {
        // The token expired or auth rotated its keys: one fresh token, one retry.
        this.token = null;
        continue;
      }
      const wait = error.retryAfterS;
      if (response.status === 429 && wait !== null && wait <= MAX_RETRY_WAIT_S && attempt < MAX_RETRIES) {
        await sleep(wait * 1000, options.signal);
        continue;
      }
      throw error;
    }
  }
}

function putWithProgress(
  url: string,
  file: Blob,
  onProgress: (fraction: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.setRequestHeader("content-type", file.type);
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve();
      } else {
        reject(
          errorOf(xhr.status, xhr.statusText, xhr.responseText, xhr.getResponseHeader("retry-after")),
        );
      }
    };
    xhr.onerror = () => {
      reject(networkError(new Error("the upload was cut off")));
    };
    xhr.send(file);
  });
}

function parseUpdate(data: string): Job | null {
  try {
    const value: unknown = JSON.parse(data);
    if (typeof value !== "object" || value === null) return null;
    const job = (value as { job?: unknown }).job;
    if (typeof job !== "object" || job === null) return null;
    return job as Job;
  } catch {
    return null;
  }
}

export function withQuery(
  path: string,
  query?: Record<string, string | number | boolean | undefined>,
): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  const encoded = params.toString();
  return encoded ? `${path}?${encoded}` : path;
}
