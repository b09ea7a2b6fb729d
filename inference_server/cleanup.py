"""Retention: forget old ended jobs and delete artifacts nothing refers to any more."""

from __future__ import annotations

import time
from dataclasses import dataclass

from inference_server.config import Config
from inference_server.store import jobs as js
from inference_server.store.artifacts import ArtifactStore
from inference_server.store.jobs import JobStore


@dataclass
class CleanupReport:
    jobs_deleted: int = 0
    artifacts_deleted: int = 0
    bytes_freed: int = 0
    uploads_deleted: int = 0


def cleanup(config: Config, max_age_days: float | None = None, dry_run: bool = False) -> CleanupReport:
    """Delete ended jobs older than the retention period, then unreferenced artifacts that old.

    Queued and running jobs are never touched, nor artifacts a remaining job refers to (its input
    or results); stale partial uploads go after one day.
    """
    days = config.retention_days if max_age_days is None else max_age_days
    cutoff = time.time() - days * 86400
    store = JobStore(config.data_dir / "jobs.sqlite3")
    artifacts = ArtifactStore(config.data_dir / "artifacts")
    report = CleanupReport()
    try:
        for rec in store.list(states=list(js.ENDED), created_before=cutoff, limit=1_000_000):
            report.jobs_deleted += 1
            if not dry_run:
                store.delete(rec.id)
        keep = store.referenced_artifacts() | _inputs_of_live_jobs(store)
        for art in artifacts.all():
            if art.id in keep or art.created >= cutoff:
                continue
            report.artifacts_deleted += 1
            report.bytes_freed += art.size
            if not dry_run:
                artifacts.delete(art.id)
        for part in artifacts.stale_uploads(time.time() - 86400):
            report.uploads_deleted += 1
            if not dry_run:
                part.unlink(missing_ok=True)
                part.with_suffix(".json").unlink(missing_ok=True)
    finally:
        store.close()
    return report


def _inputs_of_live_jobs(store: JobStore) -> set[str]:
    """Artifact ids named in the requests of jobs still kept (their inputs)."""
    import re

    ids: set[str] = set()
    for rec in store.list(limit=1_000_000):
        ids.update(m.decode() for m in re.findall(rb"[0-9a-f]{64}", rec.request))
    return ids
