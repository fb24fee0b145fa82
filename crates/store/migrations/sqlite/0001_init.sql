-- holdfast store, SQLite schema v1. Times are Unix milliseconds (INTEGER); JSON is TEXT.
CREATE TABLE workflows (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE tasks (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id          TEXT NOT NULL UNIQUE,
    workflow         TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    status           TEXT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,
    idempotency_key  TEXT UNIQUE,
    completed_steps  TEXT NOT NULL DEFAULT '[]',
    pending_steps    TEXT NOT NULL DEFAULT '[]',
    retry_count      INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    checkpoint_step  TEXT,
    checkpoint_at    INTEGER,
    cost_usd         REAL NOT NULL DEFAULT 0,
    next_run_at      INTEGER,
    lease_owner      TEXT,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    lease_expires_at INTEGER,
    event_seq        INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    FOREIGN KEY (workflow, workflow_version) REFERENCES workflows (name, version)
);
CREATE INDEX tasks_ready ON tasks (next_run_at, seq) WHERE status IN ('queued', 'running');
CREATE INDEX tasks_by_status ON tasks (status, seq);
CREATE INDEX tasks_by_workflow ON tasks (workflow, seq);

CREATE TABLE steps (
    task_id         TEXT NOT NULL REFERENCES tasks (task_id),
    name            TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    output          TEXT,
    error           TEXT,
    next_attempt_at INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (task_id, name)
) WITHOUT ROWID;
CREATE INDEX steps_retry_queue ON steps (next_attempt_at) WHERE status = 'retrying';

CREATE TABLE events (
    task_id TEXT NOT NULL REFERENCES tasks (task_id),
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

CREATE TABLE jobs (
    job_id           TEXT PRIMARY KEY,
    task_id          TEXT NOT NULL REFERENCES tasks (task_id),
    step             TEXT NOT NULL,
    queue            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL,
    token            INTEGER NOT NULL DEFAULT 0,
    worker           TEXT,
    lease_expires_at INTEGER,
    result           TEXT,
    error            TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_ready ON jobs (queue, created_at) WHERE status IN ('pending', 'claimed');
CREATE INDEX jobs_by_task ON jobs (task_id);

CREATE TABLE locks (
    name       TEXT PRIMARY KEY,
    holder     TEXT,
    token      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE escalations (
    escalation_id TEXT PRIMARY KEY,
    task_id       TEXT NOT NULL REFERENCES tasks (task_id),
    step          TEXT NOT NULL,
    reason        TEXT NOT NULL,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL,
    resolution    TEXT,
    resolved_by   TEXT,
    created_at    INTEGER NOT NULL,
    resolved_at   INTEGER
);
CREATE INDEX escalations_by_status ON escalations (status, created_at);
CREATE INDEX escalations_by_task ON escalations (task_id);

CREATE TABLE config_versions (
    version    INTEGER PRIMARY KEY,
    sha256     TEXT NOT NULL,
    text       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
