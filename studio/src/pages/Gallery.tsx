import { useEffect, useId, useState } from "react";
import type { GouacheApi } from "../api/client";
import { messageOf } from "../api/errors";
import type { Job } from "../api/types";
import { AuthImage } from "../components/AuthImage";
import { JobCompare } from "../components/JobCompare";
import { Rating } from "../components/Rating";

const PAGE_SIZE = 12;
const FILTERS = ["", "succeeded", "running", "pending", "failed", "canceled"] as const;

function when(timestamp: string | undefined): string {
  if (!timestamp) return "";
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toLocaleString();
}

/** Your past jobs, newest first (GET /v1/jobs, paged), with download and rating. */
export function Gallery({ api }: { api: GouacheApi }) {
  const [jobs, setJobs] = useState<Job[]>([]);
  const [next, setNext] = useState<string | null>("");
  const [status, setStatus] = useState<string>("");
  const [comparing, setComparing] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const filterId = useId();

  // The first page, again whenever the filter changes.
  useEffect(() => {
    let live = true;
    api.listJobs("", PAGE_SIZE, status).then(
      (page) => {
        if (!live) return;
        setJobs(page.jobs);
        setNext(page.next_page_token || null);
        setLoading(false);
      },
      (caught: unknown) => {
        if (!live) return;
        setError(messageOf(caught));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [api, status]);

  async function more(token: string) {
    setLoading(true);
    setError(null);
    try {
      const page = await api.listJobs(token, PAGE_SIZE, status);
      setJobs((current) => [...current, ...page.jobs]);
      setNext(page.next_page_token || null);
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setLoading(false);
    }
  }

  return (
    <main id="main" className="gallery">
      <h1>Gallery</h1>
      <div className="field inline">
        <label htmlFor={filterId}>Show</label>
        <select
          id={filterId}
          value={status}
          onChange={(event) => {
            setStatus(event.target.value);
            setJobs([]);
            setError(null);
            setLoading(true);
          }}
        >
          {FILTERS.map((value) => (
            <option key={value} value={value}>
              {value || "all jobs"}
            </option>
          ))}
        </select>
      </div>
      {error ? (
        <p role="alert" className="error">
          {error}
        </p>
      ) : null}
      {!loading && jobs.length === 0 && !error ? (
        <p className="hint">No jobs yet: stylize an image on the Create page.</p>
      ) : null}
      <ul className="job-grid">
        {jobs.map((job) => (
          <li key={job.job_id} className="job-card">
            {job.status === "succeeded" && job.result_url ? (
              <AuthImage
                key={job.result_url}
                api={api}
                src={job.result_url}
                alt={`Result of job ${job.job_id}`}
                loading="lazy"
              />
            ) : (
              <div className="placeholder" aria-hidden="true">
                {job.status}
              </div>
            )}
            <dl>
              <dt>Status</dt>
              <dd>
                {job.status}
                {job.cached ? " (cached)" : ""}
              </dd>
              <dt>Model</dt>
              <dd>{job.model_version}</dd>
              <dt>Lane</dt>
              <dd>{job.lane || "export"}</dd>
              <dt>Created</dt>
              <dd>{when(job.created_at)}</dd>
              {job.status === "succeeded" ? (
                <>
                  <dt>Took</dt>
                  <dd>{(job.latency_ms / 1000).toFixed(1)} s</dd>
                </>
              ) : null}
            </dl>
            {job.error ? <p className="error">{job.error}</p> : null}
            {job.status === "succeeded" && job.result_url ? (
              <>
                {comparing === job.job_id ? <JobCompare api={api} job={job} /> : null}
                <div className="downloads">
                  <a className="button" href={job.result_url} download={`gouache-${job.job_id}`}>
                    Download
                  </a>
                  <button
                    type="button"
                    aria-expanded={comparing === job.job_id}
                    onClick={() => {
                      setComparing((current) => (current === job.job_id ? null : job.job_id));
                    }}
                  >
                    {comparing === job.job_id ? "Hide the photo" : "Compare with the photo"}
                  </button>
                </div>
                <Rating api={api} jobId={job.job_id} />
              </>
            ) : null}
          </li>
        ))}
      </ul>
      {next ? (
        <button type="button" disabled={loading} onClick={() => void more(next)}>
          {loading ? "Loading…" : "Load more"}
        </button>
      ) : null}
      {loading && jobs.length === 0 ? <p className="hint">Loading…</p> : null}
    </main>
  );
}
