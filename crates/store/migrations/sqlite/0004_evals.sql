-- Evaluation runs of the quality loop and their per-case results. A run belongs to a
-- tenant and its id is that tenant's own (two tenants may each keep a run "nightly").
-- Results are written one per case as each case finishes, so an interrupted run
-- resumes by skipping the cases it recorded; a case is recorded at most once per run.
-- Documents (subject, settings, summary, verdicts, answer) are JSON text; times are
-- Unix milliseconds.

CREATE TABLE eval_runs (
    tenant        TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    suite         TEXT NOT NULL,
    suite_sha256  TEXT NOT NULL,
    subject       TEXT NOT NULL,
    settings      TEXT NOT NULL,
    cases         INTEGER NOT NULL,
    status        TEXT NOT NULL,
    summary       TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    PRIMARY KEY (tenant, run_id)
);

CREATE INDEX eval_runs_by_created ON eval_runs (created_at, run_id);
CREATE INDEX eval_runs_by_suite ON eval_runs (suite, created_at);

CREATE TABLE eval_results (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    case_id      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    score        REAL NOT NULL,
    tags         TEXT NOT NULL,
    verdicts     TEXT NOT NULL,
    answer       TEXT NOT NULL,
    error        TEXT,
    cost_usd     REAL NOT NULL,
    latency_ms   INTEGER NOT NULL,
    recorded_at  INTEGER NOT NULL,
    UNIQUE (tenant, run_id, case_id),
    FOREIGN KEY (tenant, run_id) REFERENCES eval_runs (tenant, run_id)
);
