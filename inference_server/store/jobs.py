"""SQLite store of jobs and their event histories, so both survive a server restart.

Only the gRPC front's event-loop thread uses the store, so one connection suffices. Events are
appended as serialized keygrip.v1.JobEvent messages: a watcher that reconnects after a restart can
still resume from any sequence number.
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from keygrip.v1 import common_pb2

QUEUED = common_pb2.JOB_STATE_QUEUED
RUNNING = common_pb2.JOB_STATE_RUNNING
SUCCEEDED = common_pb2.JOB_STATE_SUCCEEDED
FAILED = common_pb2.JOB_STATE_FAILED
CANCELLED = common_pb2.JOB_STATE_CANCELLED
ENDED = (SUCCEEDED, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    state INTEGER NOT NULL,
    request_id TEXT,
    request BLOB,
    result BLOB,
    progress BLOB,
    error_code TEXT NOT NULL DEFAULT '',
    error_reason TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    last_sequence INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request_id ON jobs(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    event BLOB NOT NULL,
    PRIMARY KEY (job_id, sequence)
);
CREATE TABLE IF NOT EXISTS job_artifacts (
    job_id TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    PRIMARY KEY (job_id, artifact_id)
);
"""


@dataclass
class JobRecord:
    id: str
    type: str
    state: common_pb2.JobState.ValueType
    request_id: str | None
    request: bytes            # serialized google.protobuf.Any
    result: bytes | None      # serialized google.protobuf.Any
    progress: bytes | None    # serialized keygrip.v1.Progress
    error_code: str
    error_reason: str
    error_message: str
    created: float
    started: float | None
    finished: float | None
    last_sequence: int
    attempts: int             # runs started (a job whose process died is requeued and runs again)

    @property
    def ended(self) -> bool:
        return self.state in ENDED


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(jobs)")}
        if "attempts" not in columns:  # a data directory from before jobs were requeued
            self.db.execute("ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self.db.close()

    def create(self, job_id: str, job_type: str, request: bytes, request_id: str | None) -> JobRecord:
        self.db.execute(
            "INSERT INTO jobs (id, type, state, request_id, request, created) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, job_type, QUEUED, request_id or None, request, time.time()),
        )
        rec = self.get(job_id)
        assert rec is not None
        return rec

    def get(self, job_id: str) -> JobRecord | None:
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRecord(**dict(row)) if row else None

    def by_request_id(self, request_id: str) -> JobRecord | None:
        row = self.db.execute("SELECT * FROM jobs WHERE request_id = ?", (request_id,)).fetchone()
        return JobRecord(**dict(row)) if row else None

    def list(self, states: builtins.list[common_pb2.JobState.ValueType] | None = None, job_type: str = "",
             limit: int = 100, offset: int = 0, created_before: float | None = None) -> list[JobRecord]:
        query = "SELECT * FROM jobs WHERE 1=1"
        args: builtins.list[object] = []
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        if job_type:
            query += " AND type = ?"
            args.append(job_type)
        if created_before is not None:
            query += " AND created < ?"
            args.append(created_before)
        query += " ORDER BY created DESC, id LIMIT ? OFFSET ?"
        args += [limit, offset]
        return [JobRecord(**dict(r)) for r in self.db.execute(query, args)]

    def update(self, job_id: str, **values: object) -> None:
        cols = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE jobs SET {cols} WHERE id = ?", (*values.values(), job_id))

    def append_event(self, job_id: str, sequence: int, event: bytes) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("INSERT INTO events (job_id, sequence, event) VALUES (?, ?, ?)",
                            (job_id, sequence, event))
            self.db.execute("UPDATE jobs SET last_sequence = ? WHERE id = ?", (sequence, job_id))

    def events(self, job_id: str, after_sequence: int) -> builtins.list[bytes]:
        rows = self.db.execute(
            "SELECT event FROM events WHERE job_id = ? AND sequence > ? ORDER BY sequence",
            (job_id, after_sequence),
        )
        return [r[0] for r in rows]

    def link_artifacts(self, job_id: str, artifact_ids: builtins.list[str]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO job_artifacts (job_id, artifact_id) VALUES (?, ?)",
                            [(job_id, a) for a in artifact_ids])

    def referenced_artifacts(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT artifact_id FROM job_artifacts")}

    def delete(self, job_id: str) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            self.db.execute("DELETE FROM job_artifacts WHERE job_id = ?", (job_id,))
            self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
