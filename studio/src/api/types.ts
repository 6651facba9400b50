// The REST API's JSON, as Envoy transcodes it from the protos (protos/gouache/*/v1/*.proto):
// proto field names, zero values printed, int64 as strings.

export type JobStatus = "pending" | "running" | "succeeded" | "failed" | "canceled";
export const FINAL_STATUSES: ReadonlySet<string> = new Set(["succeeded", "failed", "canceled"]);

export interface StylizeParams {
  alpha?: number;
  tv_weight?: number;
  luminance_only?: boolean;
  histogram_match?: boolean;
  seed?: number;
  weights?: number[];
  output_format?: string;
  quality?: number;
  max_side?: number;
}

export interface Job {
  job_id: string;
  status: string;
  model_version: string;
  requested_model_version: string;
  content_url: string;
  style_urls: string[];
  params?: StylizeParams;
  latency_ms: number;
  result_url?: string;
  error?: string;
  error_code?: string;
  progress: number;
  eta_seconds: number;
  created_at?: string;
  updated_at?: string;
  cached: boolean;
  lane: string;
}

export interface CreateJobRequest {
  content_url: string;
  style_urls: string[];
  model_version: string;
  params: StylizeParams;
  lane: "preview" | "export";
}

export interface CreateJobResponse {
  job_id: string;
  status: string;
  eta_seconds: number;
  model_version: string;
  cached: boolean;
}

export interface ListJobsResponse {
  jobs: Job[];
  next_page_token: string;
}

export interface Style {
  style_id: string;
  title: string;
  artist: string;
  year: string;
  license: string;
  provenance: string;
  curated: boolean;
  file_url: string;
  width: number;
  height: number;
  tags: string[];
}

export interface ModelVersion {
  name: string;
  family: string;
  description: string;
}

export interface ModelRoute {
  alias: string;
  targets: { model_version: string; weight: number }[];
}

export interface ListModelsResponse {
  versions: ModelVersion[];
  routes: ModelRoute[];
}

export interface SignUploadResponse {
  upload_url: string;
  file_url: string;
  image_id: string;
}

export interface ModelVersionStats {
  model_version: string;
  jobs_succeeded: string;
  jobs_failed: string;
  error_rate: number;
  latency_p50_ms: number;
  latency_p95_ms: number;
  latency_p99_ms: number;
  ratings_count: string;
  rating_mean: number;
}

export interface UsageRecord {
  /** The project the jobs belong to (a user's own id for their personal project). */
  project_id?: string;
  user_id: string;
  model_version: string;
  jobs_succeeded: string;
  jobs_failed: string;
  jobs_cached: string;
  last_finished_at?: string;
  /** Pixels of the results models made for the succeeded jobs, in millions. */
  output_megapixels?: number;
  /** The workers' time on the succeeded jobs (what plan quotas count), in seconds. */
  compute_seconds?: number;
  /** The part of compute_seconds spent on a GPU. */
  gpu_seconds?: number;
}

export interface WhoAmI {
  user_id: string;
  email: string;
  role: string;
  scopes: string[];
}

export interface Feedback {
  feedback_id: string;
  job_id: string;
  rating: number;
}
