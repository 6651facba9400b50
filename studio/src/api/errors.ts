// Errors from the API, with the API's own message: every error the edge sends is
// {code, message, details} JSON (a gRPC status through Envoy's transcoder, or Envoy's own).

const GRPC_CODES: Record<number, string> = {
  1: "CANCELLED",
  2: "UNKNOWN",
  3: "INVALID_ARGUMENT",
  4: "DEADLINE_EXCEEDED",
  5: "NOT_FOUND",
  6: "ALREADY_EXISTS",
  7: "PERMISSION_DENIED",
  8: "RESOURCE_EXHAUSTED",
  9: "FAILED_PRECONDITION",
  10: "ABORTED",
  11: "OUT_OF_RANGE",
  12: "UNIMPLEMENTED",
  13: "INTERNAL",
  14: "UNAVAILABLE",
  16: "UNAUTHENTICATED",
};

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfterS: number | null;

  constructor(status: number, message: string, code: string, retryAfterS: number | null = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
  }

  /** What to show a person: the API's own message, with what to do where that is clear. */
  describe(): string {
    if (this.status === 401) return `${this.message} (sign in again)`;
    if (this.status === 429 && this.retryAfterS !== null) {
      return `${this.message} (try again in ${this.retryAfterS} s)`;
    }
    return this.message;
  }
}

/** The ApiError a failed response carries: its JSON message when there is one, else its text,
 * else the HTTP status line. */
export async function errorFrom(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => "");
  return errorOf(response.status, response.statusText, text, response.headers.get("retry-after"));
}

/** The same from the parts of an answer (an XMLHttpRequest's, say). */
export function errorOf(
  status: number,
  statusText: string,
  text: string,
  retryAfter: string | null,
): ApiError {
  const retryAfterS = retryAfter !== null && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null;
  let message = "";
  let code = `HTTP_${status}`;
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === "object" && body !== null) {
      const record = body as Record<string, unknown>;
      if (typeof record.message === "string") message = record.message;
      if (typeof record.code === "number") code = GRPC_CODES[record.code] ?? code;
    }
  } catch {
    message = text.trim().slice(0, 300);
  }
  if (!message) message = `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
  return new ApiError(status, message, code, retryAfterS);
}

/** A network failure (the edge is down, the connection was cut) as an ApiError of status 0. */
export function networkError(error: unknown): ApiError {
  const detail = error instanceof Error ? error.message : String(error);
  return new ApiError(0, `cannot reach the gouache API (${detail})`, "NETWORK");
}

/** The message to show for anything thrown. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.describe();
  if (error instanceof Error) return error.message;
  return String(error);
}
