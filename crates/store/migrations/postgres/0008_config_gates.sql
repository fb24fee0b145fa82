-- The quality gate's verdict on each configuration version: whether the suites it ran
-- passed, what was done about it (`applied`, `refused`, `rolled_back`, `alerted`) and
-- the report (each suite's run id, gate checks and the cases that did not pass). A
-- version gated again (the same text sent again after a refusal) replaces its row.

CREATE TABLE config_gates (
    version     bigint PRIMARY KEY REFERENCES config_versions (version),
    passed      boolean NOT NULL,
    action      text NOT NULL,
    report      json NOT NULL,
    decided_at  timestamptz NOT NULL
);
