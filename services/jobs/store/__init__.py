"""The jobs database: this service's tables only, and the reads and writes on them.

`tables` (the schema), `rows` (rows to domain objects and back), `unit_of_work` (one
transaction's reads and writes), `database` (JobStore: transactions and reads outside them),
`usage` (compute used per owner and month, for plan quotas), `erasure` (user erasures
and jobs' share of one).
"""

from services.jobs.store.database import JobStore
from services.jobs.store.erasure import erasures_table
from services.jobs.store.rows import Delivery, DeliveryTask
from services.jobs.store.tables import (
    batches_table,
    deliveries_table,
    endpoints_table,
    jobs_table,
    metadata,
    outbox,
    processed_events,
    result_cache_table,
    routes_table,
    versions_table,
    webhooks_table,
)
from services.jobs.store.unit_of_work import UnitOfWork
from services.jobs.store.usage import compute_usage_table

__all__ = [
    "Delivery",
    "DeliveryTask",
    "JobStore",
    "UnitOfWork",
    "batches_table",
    "compute_usage_table",
    "deliveries_table",
    "endpoints_table",
    "erasures_table",
    "jobs_table",
    "metadata",
    "outbox",
    "processed_events",
    "result_cache_table",
    "routes_table",
    "versions_table",
    "webhooks_table",
]
