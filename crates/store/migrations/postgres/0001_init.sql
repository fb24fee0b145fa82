-- holdfast store, PostgreSQL schema v1. Times are timestamptz (leases are database
-- timestamps); the API speaks Unix milliseconds through hf_ts/hf_ms. Documents are
-- json (verbatim); step lists are jsonb (set operations).
CREATE FUNCTION hf_ts(ms bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT timestamptz 'epoch' + ms * interval '1 millisecond' $$;
CREATE FUNCTION hf_ms(t timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT floor(extract(epoch FROM t) * 1000)::bigint $$;

CREATE TABLE workflows (
    name        text NOT NULL,
    version     bigint NOT NULL,
    definition  json NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE tasks (
    seq              bigserial PRIMARY KEY,
    task_id          text NOT NULL UNIQUE,
    workflow         text NOT NULL,
    workflow_version bigint NOT NULL,
    status           text NOT NULL,
    input            json NOT NULL,
    output           json,
    idempotency_key  text UNIQUE,
    completed_steps  jsonb NOT NULL DEFAULT '[]',
    pending_steps    jsonb NOT NULL DEFAULT '[]',
    retry_count      bigint NOT NULL DEFAULT 0,
    last_error       text,
    checkpoint_step  text,
    checkpoint_at    timestamptz,
    cost_usd         double precision NOT NULL DEFAULT 0,
    next_run_at      timestamptz,
    lease_owner      text,
    lease_token      bigint NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    event_seq        bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    FOREIGN KEY (workflow, workflow_version) REFERENCES workflows (name, version)
);
CREATE INDEX tasks_ready ON tasks (next_run_at, seq) WHERE status IN ('queued', 'running');
CREATE INDEX tasks_by_status ON tasks (status, seq);
CREATE INDEX tasks_by_workflow ON tasks (workflow, seq);

CREATE TABLE steps (
    task_id         text NOT NULL REFERENCES tasks (task_id),
    name            text NOT NULL,
    status          text NOT NULL,
    attempt         bigint NOT NULL,
    output          json,
    error           text,
    next_attempt_at timestamptz,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (task_id, name)
);
CREATE INDEX steps_retry_queue ON steps (next_attempt_at) WHERE status = 'retrying';

CREATE TABLE events (
    task_id text NOT NULL REFERENCES tasks (task_id),
    seq     bigint NOT NULL,
    at      timestamptz NOT NULL,
    kind    text NOT NULL,
    data    json NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE jobs (
    job_id           text PRIMARY KEY,
    task_id          text NOT NULL REFERENCES tasks (task_id),
    step             text NOT NULL,
    queue            text NOT NULL,
    payload          json NOT NULL,
    status           text NOT NULL,
    token            bigint NOT NULL DEFAULT 0,
    worker           text,
    lease_expires_at timestamptz,
    result           json,
    error            text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX jobs_ready ON jobs (queue, created_at) WHERE status IN ('pending', 'claimed');
CREATE INDEX jobs_by_task ON jobs (task_id);

CREATE TABLE locks (
    name       text PRIMARY KEY,
    holder     text,
    token      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE escalations (
    escalation_id text PRIMARY KEY,
    task_id       text NOT NULL REFERENCES tasks (task_id),
    step          text NOT NULL,
    reason        text NOT NULL,
    payload       json NOT NULL,
    status        text NOT NULL,
    resolution    json,
    resolved_by   text,
    created_at    timestamptz NOT NULL,
    resolved_at   timestamptz
);
CREATE INDEX escalations_by_status ON escalations (status, created_at);
CREATE INDEX escalations_by_task ON escalations (task_id);

CREATE TABLE config_versions (
    version    bigint PRIMARY KEY,
    sha256     text NOT NULL,
    text       text NOT NULL,
    created_at timestamptz NOT NULL
);
