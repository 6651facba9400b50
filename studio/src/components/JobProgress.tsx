import type { Job } from "../api/types";

interface Props {
  label: string;
  job: Job | null;
  error: string | null;
}

const WORDS: Record<string, string> = {
  pending: "queued",
  running: "stylizing",
  succeeded: "done",
  failed: "failed",
  canceled: "canceled",
};

/** A job's state as the API reports it: a progress bar while it runs, its error if it fails. */
export function JobProgress({ label, job, error }: Props) {
  const percent = job ? Math.round(job.progress * 100) : 0;
  const status = job ? (WORDS[job.status] ?? job.status) : "sending";
  const problem = error ?? (job?.status === "failed" ? (job.error ?? "the job failed") : null);
  return (
    <div className="job-progress">
      <div className="job-progress-head">
        <span>{label}</span>
        <span data-testid={`${label.toLowerCase()}-status`}>
          {status}
          {job?.status === "running" ? ` ${percent}%` : ""}
          {job?.status === "succeeded" && job.cached ? " (from your cache)" : ""}
          {job?.status === "succeeded" && !job.cached ? ` in ${(job.latency_ms / 1000).toFixed(1)} s` : ""}
        </span>
      </div>
      <progress
        max={100}
        value={job?.status === "succeeded" ? 100 : percent}
        aria-label={`${label} progress`}
      />
      {job && job.model_version ? (
        <p className="hint">
          model {job.model_version}
          {job.requested_model_version && job.requested_model_version !== job.model_version
            ? ` (asked for ${job.requested_model_version})`
            : ""}
        </p>
      ) : null}
      {problem ? (
        <p role="alert" className="error">
          {label}: {problem}
          {job?.error_code ? ` (${job.error_code})` : ""}
        </p>
      ) : null}
    </div>
  );
}
