import type { GouacheApi } from "../api/client";
import type { Job } from "../api/types";
import { useImageUrl } from "./AuthImage";
import { Compare } from "./Compare";

/** A past job's photo and result under the before/after slider. */
export function JobCompare({ api, job }: { api: GouacheApi; job: Job }) {
  const { url: before, failed } = useImageUrl(api, job.content_url);
  if (failed) return <p className="error">The photo of this job is not available.</p>;
  if (before === null || !job.result_url) return <p className="hint">Loading the photo…</p>;
  return (
    <Compare before={before} after={job.result_url} afterLabel={`${job.lane || "export"}, ${job.model_version}`} />
  );
}
