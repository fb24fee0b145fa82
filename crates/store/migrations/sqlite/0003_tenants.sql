-- Tasks belong to a tenant, and a client's idempotency key is its tenant's own: two
-- tenants submitting "order-1" get two tasks. The key was UNIQUE on its own, a
-- constraint SQLite cannot drop, so the table is rebuilt (SQLite's documented way:
-- create, copy, drop, rename) with UNIQUE (tenant, idempotency_key). Tasks stored
-- before tenants existed belong to the tenant "default", the tenant of a server without
-- client keys. Jobs and escalations take their task's tenant through their task.
--
-- Steps, events, jobs and escalations reference tasks(task_id): the runner turns
-- foreign keys off while a migration runs and checks them all before it commits.

CREATE TABLE tasks_new (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id          TEXT NOT NULL UNIQUE,
    tenant           TEXT NOT NULL,
    workflow         TEXT NOT NULL,
    workflow_version INTEGER NOT NULL,
    status           TEXT NOT NULL,
    input            TEXT NOT NULL,
    output           TEXT,
    idempotency_key  TEXT,
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
    UNIQUE (tenant, idempotency_key),
    FOREIGN KEY (workflow, workflow_version) REFERENCES workflows (name, version)
);

INSERT INTO tasks_new (seq, task_id, tenant, workflow, workflow_version, status, input, output,
    idempotency_key, completed_steps, pending_steps, retry_count, last_error, checkpoint_step,
    checkpoint_at, cost_usd, next_run_at, lease_owner, lease_token, lease_expires_at, event_seq,
    created_at, updated_at)
SELECT seq, task_id, 'default', workflow, workflow_version, status, input, output,
    idempotency_key, completed_steps, pending_steps, retry_count, last_error, checkpoint_step,
    checkpoint_at, cost_usd, next_run_at, lease_owner, lease_token, lease_expires_at, event_seq,
    created_at, updated_at
FROM tasks;

DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;

CREATE INDEX tasks_ready ON tasks (next_run_at, seq) WHERE status IN ('queued', 'running', 'waiting');
CREATE INDEX tasks_by_status ON tasks (status, seq);
CREATE INDEX tasks_by_workflow ON tasks (workflow, seq);
CREATE INDEX tasks_by_tenant ON tasks (tenant, seq);
