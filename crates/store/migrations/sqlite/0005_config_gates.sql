-- The quality gate's verdict on each configuration version: whether the suites it ran
-- passed, what was done about it (`applied`, `refused`, `rolled_back`, `alerted`) and
-- the report (JSON: each suite's run id, gate checks and the cases that did not pass).
-- A version gated again (the same text sent again after a refusal) replaces its row.
-- Times are Unix milliseconds.

CREATE TABLE config_gates (
    version     INTEGER PRIMARY KEY REFERENCES config_versions (version),
    passed      INTEGER NOT NULL,
    action      TEXT NOT NULL,
    report      TEXT NOT NULL,
    decided_at  INTEGER NOT NULL
);
