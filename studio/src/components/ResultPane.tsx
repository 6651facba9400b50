import { useState } from "react";
import type { GouacheApi } from "../api/client";
import type { Job } from "../api/types";
import { Compare } from "./Compare";
import { JobProgress } from "./JobProgress";
import { Rating } from "./Rating";

export interface Run {
  job: Job | null;
  error: string | null;
}

interface Props {
  api: GouacheApi;
  headingId: string;
  before: string | null;
  preview: Run | null;
  full: Run | null;
}

/** The preview's and the full job's progress, then the newest result beside the photo, with
 * download, a copyable link and (for the full result) a rating. */
export function ResultPane({ api, headingId, before, preview, full }: Props) {
  const [copied, setCopied] = useState<{ url: string; text: string } | null>(null);
  const done = (run: Run | null) =>
    run?.job?.status === "succeeded" && run.job.result_url ? run.job : null;
  const shownJob = done(full) ?? done(preview);
  const resultUrl = shownJob?.result_url ?? "";
  const label = shownJob
    ? `${shownJob.lane === "preview" ? "preview" : "full result"}, ${shownJob.model_version}`
    : "";

  function copy() {
    const url = new URL(resultUrl, window.location.href).href;
    navigator.clipboard.writeText(url).then(
      () => {
        setCopied({ url: resultUrl, text: "Link copied: it works until its signature expires." });
      },
      () => {
        setCopied({ url: resultUrl, text: `Copy this link: ${url}` });
      },
    );
  }

  return (
    <section className="result" aria-labelledby={headingId}>
      <h2 id={headingId}>Result</h2>
      {preview || full ? (
        <div aria-live="polite">
          <JobProgress label="Preview" job={preview?.job ?? null} error={preview?.error ?? null} />
          <JobProgress label="Full" job={full?.job ?? null} error={full?.error ?? null} />
        </div>
      ) : (
        <p className="hint">Your result appears here, with a before/after slider.</p>
      )}
      {shownJob && before ? (
        <>
          <Compare before={before} after={resultUrl} afterLabel={label} />
          <p className="downloads">
            <a href={resultUrl} download={`gouache-${shownJob.job_id}`} className="button">
              Download {shownJob.lane === "preview" ? "preview" : "result"}
            </a>
            <button type="button" onClick={copy}>
              Copy link
            </button>
          </p>
          <p className="hint" aria-live="polite">
            {copied?.url === resultUrl ? copied.text : ""}
          </p>
          {shownJob.lane !== "preview" ? <Rating api={api} jobId={shownJob.job_id} /> : null}
        </>
      ) : null}
    </section>
  );
}
