import { useEffect, useState } from "react";
import type { GouacheApi } from "../api/client";
import { messageOf } from "../api/errors";
import type { ModelVersionStats, UsageRecord } from "../api/types";

function count(value: string | number): number {
  return typeof value === "number" ? value : Number.parseInt(value, 10) || 0;
}

function ms(value: number): string {
  return value > 0 ? `${Math.round(value)} ms` : "–";
}

/** Seconds of compute as the usage API measures them: tenths below 100 s, whole above. */
function seconds(value: number | undefined): string {
  const amount = value ?? 0;
  return `${amount < 100 ? amount.toFixed(1) : Math.round(amount).toLocaleString("en")} s`;
}

/** Per model version: jobs, error rate, latency percentiles and mean rating
 * (GET /v1/feedback/stats), and jobs, compute and GPU seconds per project, user and version
 * (GET /v1/usage). */
export function Admin({ api }: { api: GouacheApi }) {
  const [stats, setStats] = useState<ModelVersionStats[] | null>(null);
  const [statsError, setStatsError] = useState<string | null>(null);
  const [usage, setUsage] = useState<UsageRecord[] | null>(null);
  const [usageError, setUsageError] = useState<string | null>(null);

  useEffect(() => {
    api.modelStats().then(setStats, (error: unknown) => {
      setStatsError(messageOf(error));
    });
    api.usage().then(setUsage, (error: unknown) => {
      setUsageError(messageOf(error));
    });
  }, [api]);

  return (
    <main id="main" className="admin">
      <h1>Admin</h1>
      <section aria-labelledby="admin-models">
        <h2 id="admin-models">Model versions</h2>
        {statsError ? (
          <p role="alert" className="error">
            {statsError}
          </p>
        ) : null}
        {stats === null && !statsError ? <p className="hint">Loading…</p> : null}
        {stats !== null && stats.length === 0 ? (
          <p className="hint">No finished jobs yet.</p>
        ) : null}
        {stats !== null && stats.length > 0 ? (
          <div className="table-wrap" tabIndex={0} role="region" aria-labelledby="admin-models">
            <table>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Jobs</th>
                  <th scope="col">Error rate</th>
                  <th scope="col">p50</th>
                  <th scope="col">p95</th>
                  <th scope="col">p99</th>
                  <th scope="col">Ratings</th>
                  <th scope="col">Mean rating</th>
                </tr>
              </thead>
              <tbody>
                {stats.map((row) => (
                  <tr key={row.model_version}>
                    <th scope="row">{row.model_version}</th>
                    <td>{count(row.jobs_succeeded) + count(row.jobs_failed)}</td>
                    <td>{(row.error_rate * 100).toFixed(1)}%</td>
                    <td>{ms(row.latency_p50_ms)}</td>
                    <td>{ms(row.latency_p95_ms)}</td>
                    <td>{ms(row.latency_p99_ms)}</td>
                    <td>{count(row.ratings_count)}</td>
                    <td>{count(row.ratings_count) > 0 ? row.rating_mean.toFixed(2) : "–"}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </section>
      <section aria-labelledby="admin-usage">
        <h2 id="admin-usage">Usage per project and user</h2>
        {usageError ? (
          <p role="alert" className="error">
            {usageError}
          </p>
        ) : null}
        {usage === null && !usageError ? <p className="hint">Loading…</p> : null}
        {usage !== null && usage.length === 0 ? <p className="hint">No usage yet.</p> : null}
        {usage !== null && usage.length > 0 ? (
          <div className="table-wrap" tabIndex={0} role="region" aria-labelledby="admin-usage">
            <table>
              <thead>
                <tr>
                  <th scope="col">Project</th>
                  <th scope="col">User</th>
                  <th scope="col">Version</th>
                  <th scope="col">Succeeded</th>
                  <th scope="col">Failed</th>
                  <th scope="col">Of which cached</th>
                  <th scope="col">Compute</th>
                  <th scope="col">GPU</th>
                  <th scope="col">Last finished</th>
                </tr>
              </thead>
              <tbody>
                {usage.map((row) => (
                  <tr key={`${row.project_id ?? ""}/${row.user_id}/${row.model_version}`}>
                    <th scope="row">{row.project_id ?? row.user_id}</th>
                    <td>{row.user_id}</td>
                    <td>{row.model_version}</td>
                    <td>{count(row.jobs_succeeded)}</td>
                    <td>{count(row.jobs_failed)}</td>
                    <td>{count(row.jobs_cached)}</td>
                    <td>{seconds(row.compute_seconds)}</td>
                    <td>{seconds(row.gpu_seconds)}</td>
                    <td>
                      {row.last_finished_at ? new Date(row.last_finished_at).toLocaleString() : "–"}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </section>
    </main>
  );
}
