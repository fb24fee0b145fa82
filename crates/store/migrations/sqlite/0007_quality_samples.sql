-- Production answers sampled by the quality loop: the request, the answer and what its
-- graders said, written once after scoring (or skipping). Kept for a retention period:
-- the quality loop deletes rows older than it, by `created_at`. Times are Unix
-- milliseconds.

CREATE TABLE quality_samples (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT NOT NULL,
    task_type       TEXT NOT NULL,
    suite           TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    input           TEXT NOT NULL,
    answer          TEXT NOT NULL,
    status          TEXT NOT NULL,
    score           REAL,
    verdicts        TEXT NOT NULL,
    judge_cost_usd  REAL NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE INDEX quality_samples_by_task ON quality_samples (tenant, task_type, id);
CREATE INDEX quality_samples_by_time ON quality_samples (created_at);
