"""Usage as a CSV document for invoicing (ExportUsage): RFC 4180, one header row.

Columns, in this order:

- period: "2026-11" or "2026-11-30" (UTC) when grouped by month or day, else empty
- project_id, user_id, model_version: whose usage (the project the jobs belong to, a user's
  own id for their personal project, and the user who created them), of which concrete
  model version
- jobs_succeeded, jobs_failed, jobs_cached: finished jobs (cached ones are succeeded too)
- output_megapixels: pixels of the results models made, in millions (6 decimals, exact)
- compute_seconds, gpu_seconds: the workers' time on succeeded jobs, and the part of it
  on a GPU (3 decimals: milliseconds, exact)
- last_finished_at: when the last of these jobs finished (RFC 3339, UTC)

Rows come in the order GetUsage returns them: by period, project, user, then model version.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC

from services.feedback.usage import UsageRecord

CONTENT_TYPE = "text/csv; charset=utf-8"
COLUMNS = (
    "period",
    "project_id",
    "user_id",
    "model_version",
    "jobs_succeeded",
    "jobs_failed",
    "jobs_cached",
    "output_megapixels",
    "compute_seconds",
    "gpu_seconds",
    "last_finished_at",
)


def seconds(ms: int) -> str:
    """Milliseconds as seconds with exactly three decimals, without float rounding."""
    return f"{ms // 1000}.{ms % 1000:03d}"


def _row(record: UsageRecord) -> tuple[str, ...]:
    finished = record.last_finished_at.astimezone(UTC)
    return (
        record.period,
        record.project_id,
        record.user_id,
        record.model_version,
        str(record.jobs_succeeded),
        str(record.jobs_failed),
        str(record.jobs_cached),
        f"{record.output_megapixels:.6f}",
        seconds(record.compute_ms),
        seconds(record.gpu_ms),
        finished.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )


def usage_csv(records: Sequence[UsageRecord]) -> bytes:
    """The CSV document of usage records: CRLF line ends, fields quoted only when needed."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    writer.writerows(_row(record) for record in records)
    return out.getvalue().encode("utf-8")
