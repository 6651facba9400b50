import { useId, useState } from "react";
import type { GouacheApi } from "../api/client";
import { messageOf } from "../api/errors";

interface Props {
  api: GouacheApi;
  jobId: string;
}

/** One to five stars for a finished job (POST /v1/feedback): radio buttons, so the arrow
 * keys move between them. */
export function Rating({ api, jobId }: Props) {
  const [rating, setRating] = useState<number | null>(null);
  const [state, setState] = useState<"idle" | "sending" | "sent">("idle");
  const [error, setError] = useState<string | null>(null);
  const name = useId();

  async function rate(value: number) {
    setRating(value);
    setState("sending");
    setError(null);
    try {
      await api.submitFeedback(jobId, value);
      setState("sent");
    } catch (caught) {
      setError(messageOf(caught));
      setState("idle");
    }
  }

  return (
    <fieldset className="rating">
      <legend>Rate this result</legend>
      <div className="stars">
        {[1, 2, 3, 4, 5].map((value) => (
          <label key={value} className={rating !== null && value <= rating ? "on" : ""}>
            <input
              type="radio"
              name={name}
              value={value}
              checked={rating === value}
              disabled={state === "sending"}
              onChange={() => void rate(value)}
            />
            <span aria-hidden="true">★</span>
            <span className="visually-hidden">
              {value} star{value > 1 ? "s" : ""}
            </span>
          </label>
        ))}
      </div>
      <p aria-live="polite" className="hint">
        {state === "sent" && rating !== null ? `Thanks: rated ${rating} of 5.` : ""}
      </p>
      {error ? (
        <p role="alert" className="error">
          {error}
        </p>
      ) : null}
    </fieldset>
  );
}
