-- Evaluation runs of the quality loop and their per-case results. A run belongs to a
-- tenant and its id is that tenant's own (two tenants may each keep a run "nightly").
-- Results are written one per case as each case finishes, so an interrupted run
-- resumes by skipping the cases it recorded; a case is recorded at most once per run.
-- Documents are json (verbatim); tags are jsonb.

CREATE TABLE eval_runs (
    tenant        text NOT NULL,
    run_id        text NOT NULL,
    suite         text NOT NULL,
    suite_sha256  text NOT NULL,
    subject       json NOT NULL,
    settings      json NOT NULL,
    cases         bigint NOT NULL,
    status        text NOT NULL,
    summary       json,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    finished_at   timestamptz,
    PRIMARY KEY (tenant, run_id)
);

CREATE INDEX eval_runs_by_created ON eval_runs (created_at, run_id);
CREATE INDEX eval_runs_by_suite ON eval_runs (suite, created_at);

CREATE TABLE eval_results (
    seq          bigserial PRIMARY KEY,
    tenant       text NOT NULL,
    run_id       text NOT NULL,
    case_id      text NOT NULL,
    outcome      text NOT NULL,
    score        double precision NOT NULL,
    tags         jsonb NOT NULL,
    verdicts     json NOT NULL,
    answer       json NOT NULL,
    error        text,
    cost_usd     double precision NOT NULL,
    latency_ms   bigint NOT NULL,
    recorded_at  timestamptz NOT NULL,
    UNIQUE (tenant, run_id, case_id),
    FOREIGN KEY (tenant, run_id) REFERENCES eval_runs (tenant, run_id)
);
